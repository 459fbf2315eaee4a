"""Evaluate next-note generators on the held-out test songs, the same way for every model.

- prediction: every test window (N_in events -> next pitch): bits per note, top-1, top-5;
- samples: one prompt of ``prompt_len`` events from the middle of each of ``n_prompts`` test
  songs long enough for prompt + ``n_new`` events (evenly chosen over the sorted song ids),
  continued by ``n_new`` sampled events; statistics against all test songs' notes, and the
  same statistics for the songs' real continuations (``real``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from midiml.evaluate.music_metrics import (
    bits_per_note,
    feature_values,
    sample_statistics,
    topk_accuracy,
)
from midiml.generate.base import Generator
from midiml.generate.sampling import continue_events
from midiml.generate.train import evaluation_windows
from midiml.represent.windows import EventData, spaced


def prompt_segments(
    data: EventData, n_prompts: int, prompt_len: int, n_new: int
) -> tuple[list[np.ndarray], list[np.ndarray], list[str]]:
    """(prompts, real continuations, file ids) from the middle of evenly chosen test songs."""
    songs = [s for s in data.songs("test") if len(data.song(s)) >= prompt_len + n_new]
    songs = [songs[i] for i in spaced(len(songs), n_prompts)]
    prompts, real, ids = [], [], []
    for s in songs:
        ev = data.song(s)
        start = (len(ev) - prompt_len - n_new) // 2
        prompts.append(ev[start : start + prompt_len])
        real.append(ev[start + prompt_len : start + prompt_len + n_new])
        ids.append(str(data.file_ids[s]))
    return prompts, real, ids


def reference_values(data: EventData) -> dict[str, np.ndarray]:
    return feature_values([data.song(s) for s in data.songs("test")])


def prediction_metrics(gen: Generator, data: EventData) -> dict[str, float]:
    x, y = evaluation_windows(data)
    probs = gen.next_pitch_proba(x)
    return {
        "test_bits_per_note": round(bits_per_note(probs, y), 6),
        "test_top1": round(topk_accuracy(probs, y, 1), 6),
        "test_top5": round(topk_accuracy(probs, y, 5), 6),
        "test_windows": int(len(y)),
    }


def sample_metrics(
    gen: Generator,
    data: EventData,
    sampling: Any,
    reference: dict[str, np.ndarray] | None = None,
    temperature: float | None = None,
) -> tuple[dict[str, float], list[np.ndarray], list[np.ndarray]]:
    """Sample continuations of the test prompts; return (sample_* stats, prompts, samples)."""
    reference = reference if reference is not None else reference_values(data)
    prompts, _, _ = prompt_segments(
        data, int(sampling.n_prompts), int(sampling.prompt_len), int(sampling.n_new)
    )
    temp = float(sampling.temperature) if temperature is None else float(temperature)
    samples = continue_events(
        gen,
        prompts,
        int(sampling.n_new),
        temp,
        int(sampling.top_k),
        int(sampling.seed),
        bool(sampling.get("model_durations", False)),
    )
    stats = {f"sample_{k}": v for k, v in sample_statistics(samples, reference).items()}
    return stats, prompts, samples


def real_metrics(
    data: EventData, sampling: Any, reference: dict[str, np.ndarray] | None = None
) -> dict[str, Any]:
    reference = reference if reference is not None else reference_values(data)
    _, real, ids = prompt_segments(
        data, int(sampling.n_prompts), int(sampling.prompt_len), int(sampling.n_new)
    )
    stats = {f"sample_{k}": v for k, v in sample_statistics(real, reference).items()}
    return {**stats, "n_prompts": len(ids), "test_songs": len(data.songs("test"))}


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


def targets(results: dict[str, dict[str, Any]], neural: list[str]) -> dict[str, Any]:
    """The issue's targets, checked by code: bits vs. the Markov baseline, best model's samples."""
    present = [n for n in neural if n in results]
    if not present or "markov" not in results:
        return {}
    best = min(present, key=lambda n: results[n]["test_bits_per_note"])
    ratio = results[best]["test_bits_per_note"] / results["markov"]["test_bits_per_note"]
    real_rr = results["real"]["sample_repeat_rate"]
    rr = results[best]["sample_repeat_rate"]
    rep_ratio = rr / real_rr if real_rr > 0 else None
    return {
        "best_neural": best,
        "bits_ratio_to_markov": round(ratio, 6),
        "bits_target_met": bool(ratio <= 0.85),
        "repeat_ratio_to_real": None if rep_ratio is None else round(rep_ratio, 6),
        "repeat_target_met": bool(rep_ratio is not None and 0.5 <= rep_ratio <= 1.5),
        "oa_target_met": bool(results[best]["sample_oa_mean"] >= 0.70),
    }


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
    results: dict[str, Any], timings: dict[str, Any], names: list[str], loss_doc: str
) -> str:
    """reports/generators.md: the table, the ablation, the targets, the loss formulas."""
    real = results["real"]
    lines = [
        "# Generators: continuing the music",
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
    if timings:
        lines += [
            "## Training wall time (machine-dependent)",
            "",
            "Wall time of each training stage's fit on the machine that ran it "
            "(also in `metrics/generator_timings.json` and MLflow; not in "
            "`generators.json`, which must be reproducible).",
            "",
            "| model | train_seconds | epochs |",
            "|---|---:|---:|",
        ]
        for k in names:
            if k in timings:
                lines.append(
                    f"| {k} | {timings[k]['train_seconds']:.1f} | {timings[k]['epochs']} |"
                )
        if "ffnn_ablation" in timings:
            for k, v in timings["ffnn_ablation"].items():
                lines.append(f"| ffnn ablation {k} | {v:.1f} | |")
        lines.append("")
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
