"""Wall time of the pipeline, stage by stage: `python benchmarks/pipeline_time.py [-- dvc args]`.

Runs ``dvc repro`` (by default ``dvc repro -f``: every stage, as the time budget is stated)
and times each stage from the moment DVC announces it ("Running stage '<name>'") to the next
announcement or the end, so the table adds up to the run. The output passes through to the
terminal; the table is printed at the end and merged into ``reports/metrics/benchmarks.json``
under ``pipeline`` (a machine-dependent figure, not a pipeline output).
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import subprocess
import sys
import time

from midiml.report.benchmarks import record

STAGE_LINE = re.compile(r"Running stage '([^']+)'")


def time_stages(lines: list[tuple[float, str]], end: float) -> dict[str, float]:
    """Seconds per stage from timestamped output lines (a stage ends where the next begins)."""
    starts = [(t, m.group(1)) for t, line in lines if (m := STAGE_LINE.search(line))]
    out: dict[str, float] = {}
    ends = [t for t, _ in starts[1:]] + [end]
    for (t0, name), t1 in zip(starts, ends[: len(starts)], strict=True):
        out[name] = round(out.get(name, 0.0) + t1 - t0, 1)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dvc_args", nargs="*", default=["repro", "-f"])
    args = parser.parse_args()
    cmd = ["dvc", *args.dvc_args]
    t_start = time.monotonic()
    lines: list[tuple[float, str]] = []
    with subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
    ) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            sys.stdout.write(line)
            lines.append((time.monotonic(), line))
    total = time.monotonic() - t_start
    if proc.returncode:
        sys.exit(f"pipeline_time: `{' '.join(cmd)}` failed (exit {proc.returncode})")
    stages = time_stages(lines, time.monotonic())
    print(f"\n{'stage':<40} {'seconds':>8}")
    for name, sec in stages.items():
        print(f"{name:<40} {sec:>8.1f}")
    print(f"{'total':<40} {total:>8.1f}")
    record(
        "pipeline",
        {
            "command": " ".join(cmd),
            "total_s": round(total, 1),
            "stages_s": stages,
            "stage_order": list(
                stages
            ),  # the JSON file's keys are sorted; the run order is kept here
            "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        },
    )


if __name__ == "__main__":
    main()
