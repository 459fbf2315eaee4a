"""`make bench`: run the speed benchmarks and merge them into reports/metrics/benchmarks.json
(and reports/benchmarks.md).

Each benchmark owns one top-level key; keys written by other benchmarks are kept.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from features_vs_music21 import run as run_features  # noqa: E402

from midiml.config import load_params  # noqa: E402
from midiml.report.benchmarks import record  # noqa: E402


def main() -> None:
    params = load_params()
    f = record("features", run_features(params.features))["features"]
    print(
        f"features: ours {f['ours_s']} s vs music21 {f['music21_s']} s on {f['n_files']} "
        f"files = {f['speedup']}x; full dataset ({f['full_dataset_files']} files) "
        f"{f['full_dataset_features_s']} s"
    )


if __name__ == "__main__":
    main()
