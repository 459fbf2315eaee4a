#!/bin/bash
# Wall and CPU seconds (user + sys, worker processes included) of each classifier stage,
# forced one at a time, with the 1-minute load before each, for a same-machine comparison of
# two checkouts (the machine's speed varies between days; compare only runs made back to back):
#   bash benchmarks/classifier_stage_times.sh /path/to/old-checkout old
#   bash benchmarks/classifier_stage_times.sh "$PWD" new
#   bash benchmarks/classifier_stage_times.sh "$PWD" new train_classifier_cnn evaluate_classifiers
# (stages after the label: only those, in that order). Needs the checkout's DVC outputs in
# place (`dvc checkout`) and `dvc` on PATH.
set -u
cd "$1"
export PYTHONPATH="$1/src"
label=$2
shift 2
stages=("$@")
if [ ${#stages[@]} -eq 0 ]; then
  stages=(classifier_copies reencoded_test_songs train_classifier@logreg
    train_classifier@random_forest train_classifier@extra_trees train_classifier@svm
    train_classifier@hist_gb train_classifier_words train_classifier_cnn select_classifiers
    evaluate_classifiers)
fi
total=0
cpu_total=0
for s in "${stages[@]}"; do
  load=$(cut -d' ' -f1 /proc/loadavg)
  t0=$(date +%s.%N)
  /usr/bin/time -o /tmp/stage_cpu.$$ -f "%U %S" dvc repro -f -s "$s" >/dev/null 2>&1 \
    || echo "$label $s FAILED"
  cpu=$(tail -1 /tmp/stage_cpu.$$ | awk '{print $1 + $2}')
  d=$(echo "$(date +%s.%N) - $t0" | bc)
  total=$(echo "$total + $d" | bc)
  cpu_total=$(echo "$cpu_total + ${cpu:-0}" | bc)
  printf "%s %-34s wall %7.1f  cpu %7.1f  load %s\n" "$label" "$s" "$d" "${cpu:-0}" "$load"
done
printf "%s %-34s wall %7.1f  cpu %7.1f\n" "$label" total "$total" "$cpu_total"
