"""The VAE page (reports/vae.md) and its figures: failure-and-cure table, rolls, loss curves."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from midiml.represent.onset_frame import Grid

COLUMNS = {
    "model": "model",
    "notes_per_s": "notes / s",
    "density_ratio": "density ratio",
    "mean_length_s": "mean length (s)",
    "length_ratio": "length ratio",
    "sustained_share": "sustained-cell share",
    "onset_f1": "onset F1",
    "key_consistency": "in prompt key",
    "register_gap": "Δ median pitch (semitones)",
    "step_share": "step share",
}
LABELS = {
    "real": "real continuation",
    "study": "study's VAE (plain frame BCE)",
    "ours_no_repeat": "ours without the repetition prior (the loss cure alone)",
    "ours": "ours (onset+frame, balanced BCE, KL warm-up, free bits, repetition prior)",
    "repeat": "no model: the context repeated at its best lag",
    "markov": "Markov baseline (same prompts)",
}


def rolls_figure(window: np.ndarray, probs: dict[str, np.ndarray], decode: Any, grid: Grid) -> Any:
    """Real window beside each model's continuation of the same context (frame rolls).

    ``decode(name, probs) -> notes`` turns a model's probabilities into notes; the decoded
    notes are drawn over the probabilities so blur and the notes it becomes are both visible.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    half = window.shape[-1] // 2
    panels = [("real", window[1])]
    for name, p in probs.items():
        panels.append((name, np.concatenate([window[1, :, :half], p[1]], axis=1)))
    rows = np.flatnonzero(
        window[1].any(axis=1) | np.any([p[1].max(1) > 0.2 for p in probs.values()], 0)
    )
    lo, hi = (int(rows.min()), int(rows.max())) if len(rows) else (0, window.shape[1] - 1)
    lo, hi = max(0, lo - 3), min(window.shape[1] - 1, hi + 3)
    fig, axes = plt.subplots(len(panels), 1, figsize=(10, 2.3 * len(panels)), sharex=True)
    for ax, (name, img) in zip(np.atleast_1d(axes), panels, strict=True):
        ax.imshow(
            img[lo : hi + 1],
            origin="lower",
            aspect="auto",
            cmap="Greys",
            vmin=0,
            vmax=1,
            extent=(
                0,
                img.shape[1] * grid.step,
                lo + grid.pitch_low - 0.5,
                hi + grid.pitch_low + 0.5,
            ),
        )
        if name != "real":
            notes = decode(name, probs[name])
            for _, n in notes.iterrows():
                t0 = half * grid.step + n["onset_s"]
                ax.plot([t0, t0 + n["duration_s"]], [n["pitch"]] * 2, color="tab:red", lw=1.2)
        ax.axvline(half * grid.step, color="tab:blue", lw=1)
        ax.set_ylabel("pitch")
        ax.set_title(LABELS.get(name, name), fontsize=9, loc="left")
    np.atleast_1d(axes)[-1].set_xlabel("seconds (context | continuation); red: decoded notes")
    fig.tight_layout()
    return fig


def loss_figure(histories: dict[str, list[dict[str, float]]]) -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(histories), figsize=(5 * len(histories), 3))
    for ax, (name, rows) in zip(np.atleast_1d(axes), histories.items(), strict=True):
        ep = [r["epoch"] for r in rows]
        for key in ("train_rec", "val_rec", "val_kl"):
            ax.plot(ep, [r.get(key, np.nan) for r in rows], marker="o", label=key)
        ax.set_title(LABELS.get(name, name), fontsize=9)
        ax.set_xlabel("epoch")
        ax.set_yscale("log")
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def table_markdown(table: pd.DataFrame) -> str:
    order = {name: i for i, name in enumerate(LABELS)}
    df = table.sort_values("model", key=lambda m: m.map(lambda x: order.get(x, len(order))))
    df["model"] = df["model"].map(lambda m: LABELS.get(m, m))
    df = df[list(COLUMNS)].rename(columns=COLUMNS)
    lines = ["| " + " | ".join(df.columns) + " |", "|" + "---|" * len(df.columns)]
    for _, row in df.iterrows():
        cells = [row.iloc[0]] + [f"{v:.3f}" if pd.notna(v) else "–" for v in row.iloc[1:]]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join(lines)


def _prior_lines(alone: pd.Series | None, repeat: pd.Series | None) -> str:
    """What the repetition prior adds, and what plain repetition alone scores."""
    out = ""
    if alone is not None:
        out += (
            f"\n- Without the repetition prior our loss alone reaches onset F1 "
            f"{alone['onset_f1']:.3f} and {alone['key_consistency']:.2f} of its notes in the "
            "prompt's key: the cure for the blur, but a 32-number latent cannot carry the "
            "prompt's exact pitches and rhythms; the prior hands them to the decoder."
        )
    if repeat is not None:
        out += (
            f"\n- Repeating the context alone (no model) scores onset F1 {repeat['onset_f1']:.3f}"
            f" and {repeat['key_consistency']:.2f} in key: much of what can be guessed of a "
            "continuation is repetition. It only loops; the VAE varies what it repeats (a "
            "different latent sample, a different continuation) and keeps going where the "
            "prompt does not repeat."
        )
    return out


def render_page(table: pd.DataFrame, info: dict[str, Any], grid: Grid, window: int) -> str:
    """reports/vae.md: what was trained, the failure-and-cure table, how to read it."""
    half_s = window // 2 * grid.step
    t = table.set_index("model")
    ours, study, markov = t.loc["ours"], t.loc["study"], t.loc["markov"]
    alone = t.loc["ours_no_repeat"] if "ours_no_repeat" in t.index else None
    repeat = t.loc["repeat"] if "repeat" in t.index else None
    prior_lines = _prior_lines(alone, repeat)
    ok_density = 0.5 <= ours["density_ratio"] <= 2
    ok_length = 0.5 <= ours["length_ratio"] <= 2
    study_dec, ours_dec = info["study_decoding"], info["ours_decoding"]
    kl = {v: float(info.get(f"{v}_val_kl") or float("nan")) for v in ("study", "ours")}
    return f"""# The seed study's piano-roll VAE: why it held notes forever, and the cure

The seed study trained a VAE "by letting it guess the remaining part of a song" on 512-step
sparse piano rolls; it learned to hold notes forever. Here the same conditional VAE (the
encoder reads the first {window // 2} steps, {half_s:g} s, and during training also the
continuation; the decoder writes the next {window // 2} steps from the latent and the
context) is trained three ways on the same windows: with the study's plain loss (unweighted
BCE on the frame roll, notes wherever a frame switches on), with our loss alone (separate
onset and frame heads, class-balanced BCE, KL warm-up and free bits), and with our loss
plus the repetition prior (the decoder also sees the context continued periodically at
its best-matching lag and learns per step how far to trust it). All decoding thresholds
are chosen on validation windows (below); every model is scored on the same
{info["test_windows"]} test windows (song-level split), one latent sample per window
from the prior.

![both rolls beside the real one](figures/vae_rolls.png)

{table_markdown(table)}

- **density ratio**: generated ÷ real notes in the continuation span (1 = as busy as the
  real music); **length ratio**: mean generated ÷ mean real note length;
  **sustained-cell share**: share of sounding cells in notes ≥ 2 s; **onset F1**: a
  generated onset matches a real one on the same pitch within ±1 step ({grid.step * 1000:g} ms);
  **in prompt key**: share of new notes in the scale of the prompt's key (the listening
  metrics' definition, `represent.tonality.key_consistency`; minor includes the raised 7th);
  **Δ median pitch**: register jump from the prompt, |median new − median prompt|;
  **step share**: successive intervals of 1–2 semitones.
- The study's loss: density ratio {study["density_ratio"]:.2f}, length ratio
  {study["length_ratio"]:.2f}, sustained share {study["sustained_share"]:.2f}.
  Ours: density ratio {ours["density_ratio"]:.2f} ({"within" if ok_density else "outside"}
  0.5–2), length ratio {ours["length_ratio"]:.2f} ({"within" if ok_length else "outside"}
  0.5–2), onset F1 {ours["onset_f1"]:.3f} vs Markov's {markov["onset_f1"]:.3f}
  ({"above" if ours["onset_f1"] > markov["onset_f1"] else "not above"}).{prior_lines}

Why the plain loss fails: ~98 % of the cells are empty, and a frame-only target says nothing
about where a note *starts*. Unweighted BCE is minimised by low, smeared probabilities on
the pitches the context used, nearly constant over time; with the full KL weight from the
first step the latent carries less (final validation KL {kl["study"]:.1f} nats vs
ours {kl["ours"]:.1f}), so the decoder has little rhythm to follow, and whatever threshold
is chosen turns the smear into held notes. The cure of the blur has three parts (the
"ours without the repetition prior" row): an onset head with class-balanced BCE (a missed
note start costs about as much as an invented one), KL warm-up with free bits (the latent
carries the continuation's rhythm, so a prior sample gives *a* rhythm instead of the average
of all), and thresholds chosen on validation for the best F1 among those whose note count
and mean length are within 1.5× of the real ones (F1 alone also rewards spraying and
holding notes when unsure; the study's model gets the same rule for its frame threshold
and its thresholds were onset {study_dec["onset_threshold"]}, frame {study_dec["frame_threshold"]};
ours onset {ours_dec["onset_threshold"]}, frame {ours_dec["frame_threshold"]}). Onsets are
decoded at local peaks of the onset probability (±2 steps, ±1 semitone).

Training ({info.get("trained_on", "CPU")}, {info["train_windows"]} qualifying training
windows, of which a random subsample per fit; wall times in `reports/timings/vae.json`,
git-ignored, and MLflow). Loss curves: ![loss](figures/vae_loss.png)

Use: `midiml continue song.mid -m vae --variations 3` (different latent samples give
different continuations); `midiml interpolate a.mid b.mid -o morph.mid` morphs between two
songs through the latent space.
"""
