#!/bin/bash
# Wall seconds of each classifier stage, forced one at a time, for a same-machine comparison of
# two checkouts (the machine's speed varies between days; compare only runs made back to back):
#   bash benchmarks/classifier_stage_times.sh /path/to/old-checkout old
#   bash benchmarks/classifier_stage_times.sh "$PWD" new
# Needs the checkout's DVC outputs in place (`dvc checkout`) and `dvc` on PATH.
set -u
cd "$1"
export PYTHONPATH="$1/src"
total=0
for s in classifier_copies reencoded_test_songs train_classifier@logreg \
  train_classifier@random_forest train_classifier@extra_trees train_classifier@svm \
  train_classifier@hist_gb train_classifier_words train_classifier_cnn select_classifiers \
  evaluate_classifiers; do
  t0=$(date +%s.%N)
  dvc repro -f -s "$s" >/dev/null 2>&1 || echo "$2 $s FAILED"
  d=$(echo "$(date +%s.%N) - $t0" | bc)
  total=$(echo "$total + $d" | bc)
  printf "%s %-34s %7.1f\n" "$2" "$s" "$d"
done
printf "%s %-34s %7.1f\n" "$2" total "$total"
