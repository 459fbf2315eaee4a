"""``reports/benchmarks.md`` from ``reports/metrics/benchmarks.json``.

Benchmarks run outside the pipeline (`make bench`, `make bench-train`): each one merges its
key into the JSON and re-renders this page, and the report stage picks the page up, so
speed figures reach the report without being typed in.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from midiml.io import update_json, write_text

METRICS = Path("reports/metrics/benchmarks.json")
PAGE = Path("reports/benchmarks.md")


def record(
    key: str, result: dict[str, Any], metrics: str | Path = METRICS, page: str | Path = PAGE
) -> dict[str, Any]:
    """Merge one benchmark's result into the metrics file and re-render the page."""
    data = update_json(metrics, {key: result})
    write_text(page, render(data))
    return data


def render(data: dict[str, Any]) -> str:
    lines = [
        "# Benchmarks",
        "",
        "Machine-dependent speed figures from `make bench` / `make bench-train` "
        "(`reports/metrics/benchmarks.json`); they are not pipeline outputs.",
        "",
    ]
    if f := data.get("features"):
        lines += [
            "## Features vs music21",
            "",
            f"Same {f['n_files']} real files: ours {f['ours_s']} s, music21 parse + "
            f"equivalent features {f['music21_s']} s = **{f['speedup']}×**. The whole "
            f"dataset ({f['full_dataset_files']} files, {f['n_features']} features): "
            f"{f['full_dataset_features_s']} s.",
            "",
            "| feature | files | agree within tolerance | tolerance | median abs diff |",
            "|---|---:|---:|---:|---:|",
        ]
        for name, a in sorted(f.get("agreement", {}).items()):
            lines.append(
                f"| {name} | {a['files']} | {a['agree_frac']:.1%} | {a['tolerance']} | "
                f"{a['median_abs_diff']} |"
            )
        lines.append("")
    if i := data.get("ingest"):
        lines += [
            "## Download and ingest",
            "",
            f"{i['files']} files, {i['notes']:,} notes on {i['machine']}: download + verify "
            f"{i['download_verify_s']} s, ingest {i['ingest_s']} s "
            f"({i['files_per_s']} files/s, {i['notes_per_s']:,} notes/s).",
            "",
        ]
    if v := data.get("ingest_vs_parse"):
        lines += [
            "## Ingest against symusic's bare parse",
            "",
            f"{v['files']} real files, {v['notes']:,} notes on {v['machine']} (load average "
            f"{v['load_average_1min']}), best of several runs in one process: symusic's bare "
            f"parse {v['bare_parse_s']} s; ingest {v['ingest_serial_s']} s serial "
            f"(**{v['ratio_serial']}×**), {v['ingest_pool_s']} s with {v['pool_workers']} "
            f"process(es) ({v['ratio_pool']}×); CPU time {v['bare_parse_cpu_s']} s vs "
            f"{v['ingest_serial_cpu_s']} s serial (**{v['ratio_serial_cpu']}×**).",
            "",
        ]
    if sc := data.get("scale"):
        lines += [
            "## Collection size",
            "",
            "Synthetic collections written from the real files (transposed, cropped and "
            f"re-tempoed copies) on {sc['machine']}; each step in its own process.",
            "",
            "| files | step | seconds | ms per file | peak memory (MB) | load (1 min) |",
            "|---:|---|---:|---:|---:|---:|",
        ]
        for r in sc["rows"]:
            peak = max(r["peak_rss_mb"], r.get("worker_peak_rss_mb", 0.0))
            lines.append(
                f"| {r['n_files']:,} | {r['step']} | {r['seconds']} | "
                f"{1000 * r['seconds'] / r['n_files']:.2f} | {peak:,.0f} | "
                f"{r.get('load_average_1min', '–')} |"
            )
        lines += ["", f"![Cost against collection size]({sc['figure']})", ""]
    trainers = sorted(
        k.removeprefix("generators_train_") for k in data if k.startswith("generators_train_")
    )
    if trainers:
        lines += [
            "## Generator training",
            "",
            "| trainer | device | model | seconds | epochs | best val loss |",
            "|---|---|---|---:|---:|---:|",
        ]
        for t in trainers:
            run = data[f"generators_train_{t}"]
            for model, m in run["models"].items():
                lines.append(
                    f"| {t} | {run['device']} | {model} | {m['train_seconds']} | "
                    f"{m['epochs']} | {m['best_val_loss']} |"
                )
        if s := data.get("generators_gpu_speedup"):
            lines += ["", "GPU speed-up: " + ", ".join(f"{m} {v}×" for m, v in s.items())]
        lines.append("")
    if c := data.get("continue_speed"):
        lines += [
            "## `midiml continue` speed",
            "",
            f"Wall time for {c['seconds_of_music']:.0f} s of music, start-up included, median of "
            f"{c['repeats']} runs on {c['machine']} (default model `{c['default_model']}`, "
            f"target <= {c['target_s']} s).",
            "",
            "| model | median s | max s |",
            "|---|---:|---:|",
        ]
        for name, r in c["models"].items():
            lines.append(f"| {name} | {r['median_s']} | {r['max_s']} |")
        lines.append("")
    if p := data.get("pipeline"):
        lines += [
            "## Pipeline, stage by stage",
            "",
            f"`{p['command']}` on {p['machine']} (`benchmarks/pipeline_time.py`): "
            f"**{p['total_s']} s** in all.",
            "",
            "| stage | seconds |",
            "|---|---:|",
            *(
                f"| {name} | {p['stages_s'][name]} |"
                for name in p.get("stage_order", p["stages_s"])
            ),
            "",
        ]
    return "\n".join(lines)
