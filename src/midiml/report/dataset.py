"""reports/dataset.md and its figure: our dataset table beside the seed study's."""

from __future__ import annotations

import pandas as pd

from midiml.evaluate.dataset_table import SEED_TABLE


def _fmt(v: float | int | None) -> str:
    if v is None:
        return "–"
    if isinstance(v, int) or float(v).is_integer():
        return f"{int(v):,}"
    return f"{v:,.1f}"


def render_markdown(table: dict, files: pd.DataFrame, figure: str | None = None) -> str:
    """Our table beside the seed study's, the quarantine list with reasons, and the damaged
    files kept with what each lost."""
    lines = [
        "# Dataset",
        "",
        "Per genre, computed by the `ingest` stage from `data/interim/files.parquet` "
        "(seed study's figures in the second row of each genre, for comparison). "
        "Msgs are counted on symusic's parse: 2 per note + control changes, pitch bends, "
        "lyrics, tempo, time- and key-signature and marker events (no track names, program "
        "changes, sysex or end-of-track, which mido's raw count included: 1-6 % fewer).",
        "",
        "| genre | source | files | avg length (s) | max length (s) | avg tracks "
        "| avg msgs/file | total msgs | quarantined |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for genre, row in table.items():
        lines.append(
            f"| {genre} | ours | {_fmt(row['files'])} | {_fmt(row['avg_length_s'])} | "
            f"{_fmt(row['max_length_s'])} | {_fmt(row['avg_tracks'])} | "
            f"{_fmt(row['avg_msgs_per_file'])} | {_fmt(row['total_msgs'])} | "
            f"{_fmt(row['quarantined'])} |"
        )
        seed = SEED_TABLE.get(genre)
        if seed:
            lines.append(
                f"| {genre} | seed | {_fmt(seed['files'])} | "
                f"{_fmt(seed['avg_length_s'])} | {_fmt(seed['max_length_s'])} | "
                f"{_fmt(seed['avg_tracks'])} | {_fmt(seed['avg_msgs_per_file'])} | "
                f"{_fmt(seed['total_msgs'])} | – |"
            )
    found = sum(r["found"] for r in table.values())
    used = sum(r["files"] for r in table.values())
    quarantined = sum(r["quarantined"] for r in table.values())
    damaged = files[files["salvaged"].fillna("") != ""] if "salvaged" in files else files[:0]
    used_damaged = damaged[damaged["status"] == "ok"]
    lines += [
        "",
        f"Files found: {found:,} = used {used:,} + quarantined {quarantined:,}. "
        f"Damaged but used (salvaged, each keeping what it still holds): {len(used_damaged):,}.",
        "",
    ]
    if figure:
        lines += [f"![Length and note-count distributions per genre]({figure})", ""]
    q = files[files["status"] == "quarantined"]
    lines += ["## Quarantined files", ""]
    if len(q):
        lines += ["| file | reason |", "|---|---|"]
        lines += [f"| `{r.file_id}` | {r.reason} |" for r in q.itertuples()]
    else:
        lines.append("None.")
    lines += ["", "## Damaged files kept (salvaged)", ""]
    if len(used_damaged):
        lines += ["| file | what was lost |", "|---|---|"]
        lines += [f"| `{r.file_id}` | {r.salvaged} |" for r in used_damaged.itertuples()]
    else:
        lines.append("None.")
    return "\n".join(lines) + "\n"


def distribution_figure(files: pd.DataFrame):
    """Histograms (log scale) of length and note count per genre."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    ok = files[files["status"] == "ok"]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for ax, col, title in (
        (axes[0], "length_s", "length (s)"),
        (axes[1], "n_notes", "notes per file"),
    ):
        vals = ok[col].astype(float).clip(lower=1e-1)
        bins = (
            np.logspace(np.log10(max(vals.min(), 0.1)), np.log10(vals.max() + 1), 30)
            if len(vals)
            else 10
        )
        for genre, g in ok.groupby("genre", sort=True):
            ax.hist(g[col].astype(float), bins=bins, alpha=0.55, label=str(genre))
        ax.set_xscale("log")
        ax.set_xlabel(title)
        ax.set_ylabel("files")
        ax.legend()
    fig.suptitle("Ingested files per genre")
    fig.tight_layout()
    return fig
