"""reports/generators.md and its figures: the generators' table, curves, ablation, samples."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from midiml.represent.windows import DELTA, DURATION, PITCH, VELOCITY

COLUMNS = [
    "test_bits_per_note",
    "test_top1",
    "test_top5",
    "sample_repeat_rate",
    "sample_pitch_class_entropy",
    "sample_scale_consistency",
    "sample_pitch_range",
    "sample_oa_pitch",
    "sample_oa_interval",
    "sample_oa_ioi",
    "sample_oa_mean",
]


def results_table(results: dict[str, dict[str, Any]], names: list[str]) -> pd.DataFrame:
    rows = {n: {c: results[n].get(c) for c in COLUMNS} for n in names if n in results}
    if "real" in results:
        rows["real (test songs)"] = {c: results["real"].get(c) for c in COLUMNS}
    return pd.DataFrame.from_dict(rows, orient="index")[COLUMNS]


def _fmt(v: Any) -> str:
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return "–"
    return f"{v:.3f}" if isinstance(v, float) else str(v)


def markdown_table(df: pd.DataFrame) -> str:
    head = "| model | " + " | ".join(df.columns) + " |"
    sep = "|---|" + "---:|" * len(df.columns)
    rows = [f"| {i} | " + " | ".join(_fmt(v) for v in r) + " |" for i, r in df.iterrows()]
    return "\n".join([head, sep, *rows])


def plot_bits(results: dict[str, dict[str, Any]], names: list[str]) -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    present = [n for n in names if n in results]
    fig, ax = plt.subplots(figsize=(6, 3))
    ax.bar(present, [results[n]["test_bits_per_note"] for n in present], color="tab:blue")
    if "markov" in results:
        ax.axhline(
            0.85 * results["markov"]["test_bits_per_note"],
            color="tab:red",
            ls="--",
            label="0.85 x markov (target)",
        )
        ax.legend(fontsize=8)
    ax.set_ylabel("test bits per note")
    ax.set_title("Next-pitch cost on the test songs (lower is better)")
    fig.tight_layout()
    return fig


def plot_curves(histories: dict[str, list[dict[str, float]]]) -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3))
    for name, rows in histories.items():
        rows = [r for r in rows if "val_bits" in r]
        if rows:
            ax.plot(
                [r["epoch"] for r in rows], [r["val_bits"] for r in rows], marker="o", label=name
            )
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation bits per note")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def ablation_order(ablation: dict[str, dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    """No penalty first, then by lambda_rep and alpha (JSON files sort keys alphabetically)."""
    return sorted(ablation.items(), key=lambda kv: (kv[1]["lambda_rep"], kv[1]["alpha"]))


def plot_ablation(ablation: dict[str, dict[str, Any]], real_rate: float) -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [k for k, _ in ablation_order(ablation)]
    x = np.arange(len(labels))
    fig, ax = plt.subplots(figsize=(6, 3))
    ax.bar(x - 0.2, [ablation[k]["sample_repeat_rate"] for k in labels], 0.4, label="sampled")
    ax.bar(x + 0.2, [ablation[k]["greedy_repeat_rate"] for k in labels], 0.4, label="greedy")
    ax.axhline(real_rate, color="k", ls="--", label="real test songs")
    ax.set_xticks(x, labels)
    ax.set_ylabel("repeat rate of samples")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def markdown(
    results: dict[str, Any],
    names: list[str],
    loss_doc: str,
    continuation_md: str = "",
) -> str:
    """reports/generators.md: the continuations against reality (``continuation_md``, first),
    the next-note table, the ablation, the targets, the loss formulas."""
    real = results["real"]
    lines = [
        "# Generators: continuing the music",
        "",
        continuation_md,
        "## Next-note generators on the test windows",
        "",
        f"Five next-note generators, measured on the same {real['test_songs']} held-out "
        "test songs (song-level split: no window of a test song is trained on). "
        "`test_*`: every test window (N_in events -> next pitch; interval models through "
        "the previous pitch); `sample_*`: continuations sampled from "
        f"{real['n_prompts']} test-song prompts, compared with all test songs' notes "
        "(OA = overlapping area, Yang & Lerch 2020). The last row is the same statistics "
        "for the songs' real continuations.",
        "",
        markdown_table(results_table(results, names)),
        "",
        "Reading the OA columns: they compare pooled per-note distributions, and every "
        "continuation starts from a real prompt and replays its rhythm, so OA mostly says "
        "a model stays in real music's register, interval and IOI range; scale "
        "consistency, pitch range and the prediction columns separate the models more.",
        "",
        "![bits per note](figures/generators_bits.png)",
        "",
        "![validation curves](figures/generators_val_curves.png)",
        "",
    ]
    t = results.get("targets") or {}
    if t:
        lines += [
            "## Targets",
            "",
            f"- Best neural model: `{t['best_neural']}`; bits per note = "
            f"{t['bits_ratio_to_markov']:.3f} x markov's (target <= 0.85: "
            f"{'met' if t['bits_target_met'] else 'NOT met'}).",
            f"- Its samples' repeat rate = {_fmt(t['repeat_ratio_to_real'])} x real "
            f"(target 0.5-1.5: {'met' if t['repeat_target_met'] else 'NOT met'}); "
            f"sample_oa_mean = {results[t['best_neural']]['sample_oa_mean']:.3f} "
            f"(target >= 0.70: {'met' if t['oa_target_met'] else 'NOT met'}).",
            "",
        ]
    ab = results.get("ffnn_ablation")
    if ab:
        lines += [
            "## The seed's collapse and its cure (ffnn, repetition loss)",
            "",
            "The same ffnn trained without the repetition penalty (lambda_rep = 0) and "
            "with it for each alpha; repeat rate of its sampled (temperature as "
            "configured) and greedy (argmax) continuations. Real test continuations: "
            f"{real['sample_repeat_rate']:.3f}.",
            "",
            "| variant | lambda_rep | alpha | sample_repeat_rate | greedy_repeat_rate "
            "| test_bits_per_note | sample_oa_mean |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        for k, v in ablation_order(ab):
            lines.append(
                f"| {k} | {v['lambda_rep']:g} | {v['alpha']:g} | "
                f"{v['sample_repeat_rate']:.3f} | {v['greedy_repeat_rate']:.3f} | "
                f"{v['test_bits_per_note']:.3f} | {v['sample_oa_mean']:.3f} |"
            )
        lines += ["", "![ablation](figures/generators_ablation.png)", ""]
    lines += [
        "Training wall times change with the machine and every run, so they are not on this "
        "page: `reports/timings/generators.json` (git-ignored, rewritten by each run) and "
        "each model's MLflow run (`train_seconds`).",
        "",
    ]
    lines += [
        "## Samples",
        "",
        "Prompt (grey) and continuation (red); the MIDI files are in `data/samples/` "
        "(DVC-cached, not in git: a prompt is an excerpt of a dataset song) and in "
        "each model's MLflow run. Each model picks the pitches; velocity, onset gaps "
        "and durations replay the prompt's rhythm (`model.sampling.model_durations: "
        "true` lets the tone-deaf LSTM use its own duration head instead).",
        "",
    ]
    lines += [f"![{n}](samples/{n}_0.png)" for n in names]
    lines += ["", "## Losses", "", "```", loss_doc.strip(), "```", ""]
    return "\n".join(lines)


def plot_piano_roll(prompt: np.ndarray, continuation: np.ndarray, title: str = "") -> object:
    """Piano roll of prompt (grey) followed by continuation (colour); returns the figure."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    allev = np.concatenate([prompt, continuation])
    t = np.cumsum(allev[:, DELTA])
    fig, ax = plt.subplots(figsize=(9, 3.2))
    n_p = len(prompt)
    for i, (ev, t0) in enumerate(zip(allev, t, strict=True)):
        colour = "0.55" if i < n_p else "tab:red"
        ax.broken_barh(
            [(t0, max(float(ev[DURATION]), 0.02))],
            (ev[PITCH] - 0.4, 0.8),
            facecolors=colour,
            alpha=0.35 + 0.6 * ev[VELOCITY] / 127,
        )
    if n_p and len(continuation):
        ax.axvline(t[n_p], color="k", lw=0.8, ls="--")
    ax.set_xlabel("time (s)")
    ax.set_ylabel("MIDI pitch")
    ax.set_title(title or "prompt (grey) and continuation (red)")
    if len(allev):
        ax.set_ylim(allev[:, PITCH].min() - 2, allev[:, PITCH].max() + 2)
        ax.set_xlim(0, float(t[-1] + max(allev[-1, DURATION], 0.1)))
    fig.tight_layout()
    return fig


LISTENING_COLUMNS = (
    ("key_consistency", "in prompt's key", "{:.3f}"),
    ("register_distance", "register distance (semitones)", "{:.2f}"),
    ("step_ratio", "step ratio new / prompt", "{:.2f}"),
    ("repetition", "4-gram interval repetition", "{:.3f}"),
    ("c2st_accuracy", "C2ST accuracy (0.5 = like real)", "{:.3f}"),
)


def listening_table_md(table: dict[str, dict[str, float]]) -> str:
    """The listening metrics as a markdown table, real continuations first."""
    head = "| generator | " + " | ".join(t for _, t, _ in LISTENING_COLUMNS) + " | n |"
    lines = [head, "|---|" + "---:|" * (len(LISTENING_COLUMNS) + 1)]
    for name in ["real", *sorted(k for k in table if k != "real")]:
        row = table[name]
        cells = [
            fmt.format(row[k]) if k in row and np.isfinite(row[k]) else "—"
            for k, _, fmt in LISTENING_COLUMNS
        ]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {int(row.get('n', 0))} |")
    return "\n".join(lines)


def listening_markdown(results: dict[str, Any], files: list[Any]) -> str:
    """The listening section of reports/generators.md (metrics, Transformer bits, audio)."""
    if "listening" not in results:
        return ""
    lines = [
        "",
        "## Listening metrics (held-out prompts)",
        "",
        "Each generator continues the first 32 notes of the busiest non-drum track of test "
        "songs for 20 s (3 seeds, default sampling options: key/register/step/repeat guards "
        "on, top-p 0.95); `real` is what the song really plays next. Register distance: "
        "|median pitch of the new notes - median pitch of the prompt|. C2ST: cross-validated "
        "accuracy of a random forest telling real from generated continuations.",
        "",
        listening_table_md(results["listening"]),
        "",
    ]
    if t := results.get("transformer"):
        lines += [
            f"Token Transformer on the test songs (all tracks): "
            f"{t['all_bits_per_note']:.3f} bits/note, {t['bits_per_token']:.3f} bits/token "
            f"({t['conditioning']}).",
            "",
        ]
    audio = [f for f in files if str(f).endswith(".wav")]
    if audio:
        lines += ["Audio (TimGM6mb General MIDI soundfont, DVC-cached under data/samples/): "]
        lines += [f"[{f.stem}](../data/samples/{f.name})" for f in audio]
        lines.append("")
    return "\n".join(lines)


CONTINUATION_COLUMNS = ("harmony", "rhythm", "density", "texture", "register", "score")
REFERENCE_TITLES = {
    "real": "real continuation (itself)",
    "loop": "reference: loop the prompt's last two bars",
    "next_section": "reference: the song's own next section",
    "random": "floor: random notes at the prompt's rate, in its range",
}


def _cell(v: Any, fmt: str = "{:.3f}") -> str:
    return "–" if v is None or not np.isfinite(v) else fmt.format(v)


def continuation_table_md(section: dict[str, Any]) -> str:
    """Rows: the real continuation, the references, the floor, then every generator setting
    (best score first); columns: the five measures, the score, the score per genre, novelty,
    empty continuations, C2ST."""
    table, rows = section["table"], section["rows"]
    genres = [g for g in next(iter(table.values())) if g != "all"]
    head = (
        "| continuation | "
        + " | ".join(CONTINUATION_COLUMNS)
        + f" | {' / '.join(genres)} | novelty | empty | C2ST |"
    )
    lines = [head, "|---|" + "---:|" * len(CONTINUATION_COLUMNS) + "---|---:|---:|---:|"]
    refs = [n for n in ("real", "loop", "next_section", "random") if n in table]
    models = sorted((n for n in table if n not in refs), key=lambda n: -table[n]["all"]["score"])
    default = (section.get("default") or {}).get("row")
    for name in [*refs, *models]:
        row = table[name]["all"]
        title = REFERENCE_TITLES.get(name, f"`{name}`")
        if name == default:
            title += " **(default)**"
        meta = rows.get(name, {})
        if meta.get("failed"):
            title += f" ({meta['failed']} refused)"
        cells = [_cell(row[c]) for c in CONTINUATION_COLUMNS]
        cells[-1] = f"**{cells[-1]}**"
        per_genre = " / ".join(_cell(table[name][g]["score"], "{:.2f}") for g in genres)
        lines.append(
            f"| {title} | "
            + " | ".join(cells)
            + f" | {per_genre} | {_cell(row['novelty'], '{:.2f}')} | "
            + f"{int(round(row['empty'] * row['n']))} | "
            + f"{_cell(table[name].get('c2st_accuracy'), '{:.2f}')} |"
        )
    return "\n".join(lines)


def continuation_markdown(
    section: dict[str, Any], examples: list[dict[str, str]], song_ids: list[str] | None = None
) -> str:
    """The 'against reality' section of reports/generators.md (table, songs, examples)."""
    s = section["settings"]
    songs = "; ".join(
        f"{g}: " + ", ".join(f"{n} {src}" for src, n in by_src.items())
        for g, by_src in section["songs"].items()
    )
    default = section.get("default")
    lines = [
        "## Continuations against what the music really did next",
        "",
        f"Held-out (test-split) songs, {songs}; each cut at a bar line after "
        f"{s['prompt_bars']} bars (half a shorter song), continued for {s['seconds']:g} s "
        f"(less where the song ends sooner) with {s['seeds']} sampling seeds, and compared "
        "with the song's real continuation (see docs/generator-evaluation.md). "
        "Measures 0-1 (1 = like the real continuation), score = their mean, per genre after "
        "it; novelty = share of the continuation's 4-note interval patterns absent from the "
        "prompt; empty = continuations with no note (scored 0, kept); C2ST = cross-validated "
        "accuracy of a classifier telling the continuations from the real ones (0.5 = cannot). "
        "`name/guards` samples with the sampling guards, `name/free` without.",
        "",
        continuation_table_md(section),
        "",
    ]
    if default:
        lines += [
            f"Default generator (used by `midiml continue`): `{default['model']}` "
            f"{'with' if default['guards'] else 'without'} guards, score "
            f"{default['score']:.3f}; chosen here by the score without the guards among the "
            "learned models that write their own rhythm (the window models replay the "
            "prompt's onsets, durations and chord sizes and only pick pitches, so their "
            "rhythm, density and texture measure the prompt).",
            "",
        ]
    if song_ids:
        lines += [
            "<details><summary>The held-out songs</summary>",
            "",
            *[f"- `{fid}`" for fid in song_ids],
            "",
            "</details>",
            "",
        ]
    for ex in examples:
        lines += [
            f"**{ex['title']}**: [prompt + real]({ex['real_wav']}) · "
            f"[prompt + {ex['row']}]({ex['new_wav']})",
            "",
            f"![{ex['title']}]({ex['png']})",
            "",
        ]
    return "\n".join(lines)


def plot_continuation_example(
    prompt: dict[str, np.ndarray],
    real: dict[str, np.ndarray],
    new: dict[str, np.ndarray],
    cut_s: float,
    title: str,
) -> Any:
    """Piano rolls of the prompt (grey) followed by the real continuation (top, blue) and the
    generated one (bottom, red), on the song's clock with the cut marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 1, figsize=(9, 5), sharex=True, sharey=True)
    panels = ((axes[0], real, "tab:blue", "real"), (axes[1], new, "tab:red", "generated"))
    for ax, cont, colour, label in panels:
        for notes, c in ((prompt, "0.55"), (cont, colour)):
            bars = [
                (float(o), max(float(d), 0.02))
                for o, d in zip(notes["onset_s"], notes["duration_s"], strict=True)
            ]
            for (o, d), p in zip(bars, notes["pitch"], strict=True):
                ax.broken_barh([(o, d)], (float(p) - 0.4, 0.8), facecolors=c)
        ax.axvline(cut_s, color="k", lw=0.8, ls="--")
        ax.set_ylabel(f"pitch ({label})")
    axes[0].set_title(title)
    axes[1].set_xlabel("time in the song (s)")
    fig.tight_layout()
    return fig
