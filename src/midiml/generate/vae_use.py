"""Using a trained roll VAE: thresholds, evaluation against the real continuation, saving,
continuing a user's prompt and morphing between two songs.

Thresholds are chosen on validation windows from one seeded prior sample per window (the
way the model is used), onset threshold by onset F1 and frame threshold by frame F1. The
study's frame-only model gets its frame threshold the same way, so neither side is handicapped
by an arbitrary 0.5.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from midiml.data.midi import MidiParseError, read_user_file
from midiml.evaluate import rolls as rm
from midiml.generate.continuation import write_midi
from midiml.generate.markov import MarkovGenerator
from midiml.generate.sampling import continue_seconds
from midiml.generate.vae import RollVAE, mean_probs, seeded_generator
from midiml.represent.onset_frame import (
    Grid,
    note_cells,
    onset_frame_rolls,
    onset_peaks,
    rolls_to_notes,
)
from midiml.represent.tonality import key_consistency
from midiml.represent.windows import DELTA, DURATION, PITCH, VELOCITY, event_stream

THRESHOLDS = np.round(np.arange(0.05, 0.96, 0.05), 2)
SUSTAIN_SECONDS = 2.0  # a cell in a run at least this long counts as "sustained"


@dataclass
class Decoding:
    onset_threshold: float = 0.5
    frame_threshold: float = 0.5
    onsets_from_frames: bool = False  # the study's frame-only decoding


def decode(probs: np.ndarray, grid: Grid, dec: Decoding, offset: float = 0.0) -> pd.DataFrame:
    """(2, P, T) probabilities -> notes."""
    return rolls_to_notes(
        probs[0],
        probs[1],
        grid,
        dec.onset_threshold,
        dec.frame_threshold,
        time_offset=offset,
        onsets_from_frames=dec.onsets_from_frames,
    )


def pick_within_band(scores: np.ndarray, misfit: np.ndarray, band: float) -> int:
    """Best score among candidates whose statistics are within ``band``× of the real ones
    (``misfit``: largest |log ratio|); if none is, the candidate that fits best."""
    ok = misfit <= np.log(band)
    if ok.any():
        return int(np.argmax(np.where(ok, scores, -1.0)))
    return int(np.argmin(misfit))


def choose_thresholds(
    probs: np.ndarray, targets: np.ndarray, frame_only: bool, band: float = 1.5
) -> Decoding:
    """Decoding thresholds from validation windows ((N, 2, P, T) probabilities and targets).

    F1 alone rewards an unsure model for spraying notes (onsets) and for holding them
    (frames): both buy recall cheaply, and a listener hears noise or drones. So each
    threshold is the best-F1 one among those whose decoded notes have a count (onset
    threshold) and mean length (frame threshold) within ``band``× of the real validation
    notes; if none qualifies, the one that comes closest. Onsets: ±1 step, local peaks;
    frames: the cells the decoded notes cover. The study's frame-only model gets its single
    frame threshold by the same rule on count and length together; a model whose frame
    probabilities barely change over time cannot satisfy it, which is the failure itself.
    """
    true_on, true_fr = targets[:, 0] > 0.5, targets[:, 1] > 0.5
    n_real = max(int(true_on.sum()), 1)
    len_real = true_fr.sum() / n_real  # mean note length in steps

    def f1(pred: np.ndarray, truth: np.ndarray, tol: int) -> float:
        counts = sum(rm.onset_f1_counts(c, y, tol) for c, y in zip(pred, truth, strict=True))
        return rm.f1_from_counts(counts)

    def log_ratio(x: float, ref: float) -> float:
        return abs(float(np.log(max(x, 1e-9) / ref)))

    if frame_only:
        scores, misfit = [], []
        for t in THRESHOLDS:
            fr = probs[:, 1] >= t
            starts = fr & ~np.concatenate([np.zeros_like(fr[..., :1]), fr[..., :-1]], axis=-1)
            n = int(starts.sum())
            scores.append(f1(fr, true_fr, 0))
            misfit.append(max(log_ratio(n, n_real), log_ratio(fr.sum() / max(n, 1), len_real)))
        best = pick_within_band(np.array(scores), np.array(misfit), band)
        return Decoding(0.5, float(THRESHOLDS[best]), True)
    peaks = np.stack([onset_peaks(p) for p in probs[:, 0]])
    picked = np.where(peaks, probs[:, 0], 0.0)
    on_scores = np.array([f1(picked >= t, true_on, 1) for t in THRESHOLDS])
    on_misfit = np.array([log_ratio((picked >= t).sum(), n_real) for t in THRESHOLDS])
    onset_thr = float(THRESHOLDS[pick_within_band(on_scores, on_misfit, band)])
    on = picked >= onset_thr
    n_notes = max(int(on.sum()), 1)
    fr_scores, fr_misfit = [], []
    for t in THRESHOLDS:
        cells = note_cells(on, probs[:, 1] >= t)
        fr_scores.append(f1(cells, true_fr, 0))
        fr_misfit.append(log_ratio(cells.sum() / n_notes, len_real))
    frame_thr = float(THRESHOLDS[pick_within_band(np.array(fr_scores), np.array(fr_misfit), band)])
    return Decoding(onset_thr, frame_thr, False)


def decode_audible(
    probs: np.ndarray, grid: Grid, dec: Decoding, offset: float, notes_wanted: int
) -> pd.DataFrame:
    """``decode``, but never silent: a block whose onsets all stay under the onset threshold
    (an unsure model on an unusual prompt, e.g. a sparse lo-fi loop) is decoded again with the
    threshold lowered to its ``notes_wanted``-th strongest onset peak, so it plays the notes the
    model believes in most at the prompt's density instead of nothing."""
    notes = decode(probs, grid, dec, offset)
    if len(notes) or dec.onsets_from_frames:
        return notes
    peaks = np.where(onset_peaks(probs[0]), probs[0], 0.0).ravel()
    strongest = np.sort(peaks[peaks > 0])[::-1]
    if len(strongest) == 0:
        return notes
    threshold = float(strongest[min(max(int(notes_wanted), 1), len(strongest)) - 1])
    return decode(probs, grid, Decoding(threshold, dec.frame_threshold), offset)


def window_notes(window: np.ndarray, grid: Grid) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The real (context, continuation) notes of a (2, P, W) window."""
    half = window.shape[-1] // 2
    ctx = rolls_to_notes(window[0, :, :half], window[1, :, :half], grid)
    cont = rolls_to_notes(window[0, :, half:], window[1, :, half:], grid)
    return ctx, cont


def fit_markov(notes: pd.DataFrame, file_ids: list[str], order: int = 3) -> MarkovGenerator:
    sel = notes[notes["file_id"].isin(set(file_ids))]
    streams = [event_stream(g) for _, g in sel.groupby("file_id", sort=True, observed=True)]
    return MarkovGenerator(order).fit(streams)


def markov_continuation(
    gen: MarkovGenerator, prompt: pd.DataFrame, context_seconds: float, seconds: float, seed: int
) -> pd.DataFrame:
    """The Markov baseline's continuation of a window's context, timed like the real one.

    The prompt's notes lie in [0, context_seconds); the new notes follow its last onset by
    their own gaps, and those in [context_seconds, context_seconds + seconds) are kept,
    shifted to start at 0 like the decoded continuations.
    """
    ev = event_stream(prompt)
    last = float(prompt["onset_s"].max())
    cont = continue_seconds(gen, ev, seconds + context_seconds - last, seed=seed)
    onset = last + np.cumsum(cont[:, DELTA]) - context_seconds
    df = pd.DataFrame(
        {
            "pitch": cont[:, PITCH].astype(int),
            "velocity": cont[:, VELOCITY].astype(int),
            "onset_s": onset,
            "duration_s": cont[:, DURATION].astype(np.float64),
        }
    )
    return df[(df["onset_s"] >= 0) & (df["onset_s"] < seconds)].reset_index(drop=True)


def evaluate_windows(
    probs: dict[str, np.ndarray],
    decodings: dict[str, Decoding],
    windows: np.ndarray,
    grid: Grid,
    markov: MarkovGenerator | None = None,
    seed: int = 0,
) -> pd.DataFrame:
    """One row per model (plus ``real`` and ``markov``) of pooled continuation metrics.

    ``probs[name]``: (N, 2, P, W/2) sampled probabilities per window; ``windows``: (N, 2, P, W).
    """
    half = windows.shape[-1] // 2
    seconds = half * grid.step
    sustain = int(round(SUSTAIN_SECONDS / grid.step))
    acc: dict[str, dict[str, Any]] = {}

    def add(name: str, notes: pd.DataFrame, real: pd.DataFrame, prompt: pd.DataFrame) -> None:
        a = acc.setdefault(
            name, {"n": 0, "n_real": 0, "len": [], "len_real": [], "f1": 0, "sus": [0, 0]}
        )
        a.setdefault("key", []).append(
            key_consistency(prompt["pitch"], notes["pitch"], prompt["duration_s"])
        )
        a.setdefault("reg", []).append(rm.register_gap(notes, prompt))
        a.setdefault("step", []).append(rm.step_share(notes))
        on, fr = onset_frame_rolls(notes, grid, half)
        on_r, _ = onset_frame_rolls(real, grid, half)
        a["f1"] = a["f1"] + rm.onset_f1_counts(on.toarray() > 0, on_r.toarray() > 0, 1)
        long, active = rm.sustained_cells(fr.toarray() > 0, sustain)
        a["sus"] = [a["sus"][0] + long, a["sus"][1] + active]
        a["n"] += len(notes)
        a["n_real"] += len(real)
        a["len"].extend(notes["duration_s"].tolist())
        a["len_real"].extend(real["duration_s"].tolist())

    for i, w in enumerate(windows):
        prompt, real = window_notes(w, grid)
        add("real", real, real, prompt)
        for name, p in probs.items():
            add(name, decode(p[i], grid, decodings[name]), real, prompt)
        if markov is not None:
            cont = markov_continuation(markov, prompt, seconds, seconds, seed + i)
            add("markov", cont, real, prompt)
    rows = []
    for name, a in acc.items():
        mean_len = float(np.mean(a["len"])) if a["len"] else float("nan")
        rows.append(
            {
                "model": name,
                "notes_per_s": a["n"] / (seconds * len(windows)),
                "density_ratio": a["n"] / a["n_real"] if a["n_real"] else float("nan"),
                "mean_length_s": mean_len,
                "length_ratio": mean_len / float(np.mean(a["len_real"])),
                "sustained_share": a["sus"][0] / a["sus"][1] if a["sus"][1] else 0.0,
                "onset_f1": rm.f1_from_counts(a["f1"]) if name != "real" else 1.0,
                "key_consistency": float(np.nanmean(a["key"])) if a["n"] else float("nan"),
                "register_gap": float(np.nanmean(a["reg"])) if a["n"] else float("nan"),
                "step_share": float(np.nanmean(a["step"])) if a["n"] else float("nan"),
            }
        )
    return pd.DataFrame(rows)


# -- saving and loading --------------------------------------------------------------------------
def save_model(
    model: RollVAE, model_dir: str | Path, grid: Grid, dec: Decoding, extra: dict | None = None
) -> None:
    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    torch.save({"hparams": dict(model.hparams), "state": model.state_dict()}, model_dir / "vae.pt")
    cls = type(model)
    config = {"_target_": f"{cls.__module__}.{cls.__qualname__}", **dict(model.hparams)}
    meta = {
        "name": "vae",
        "config": config,
        "continuer": "midiml.generate.vae_use.VaeContinuer",
        "grid": asdict(grid),
        "decoding": asdict(dec),
        **(extra or {}),
    }
    (model_dir / "meta.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")


def load_model(model_dir: str | Path) -> tuple[RollVAE, Grid, Decoding]:
    model_dir = Path(model_dir)
    if not (model_dir / "vae.pt").exists():
        raise FileNotFoundError(f"{model_dir}: no trained VAE here (run `dvc repro train_vae`)")
    blob = torch.load(model_dir / "vae.pt", map_location="cpu", weights_only=True)
    model = RollVAE(**blob["hparams"])
    model.load_state_dict(blob["state"])
    model.eval()
    meta = json.loads((model_dir / "meta.json").read_text())
    return model, Grid(**meta["grid"]), Decoding(**meta["decoding"])


# -- use -----------------------------------------------------------------------------------------
def _context_roll(notes: pd.DataFrame, grid: Grid, half: int, end_step: int) -> torch.Tensor:
    """The last ``half`` steps before ``end_step`` of a note table, as (1, 2, P, half)."""
    on, fr = onset_frame_rolls(notes, grid, max(end_step, 1))
    x = np.stack([on.toarray(), fr.toarray()]).astype(np.float32)[..., -half:]
    if x.shape[-1] < half:
        x = np.pad(x, ((0, 0), (0, 0), (half - x.shape[-1], 0)))
    return torch.from_numpy(x)[None]


def continue_with_vae(
    prompt_notes: pd.DataFrame,
    seconds: float = 20.0,
    variations: int = 1,
    seed: int = 0,
    model_dir: str | Path = "models/generators/vae",
) -> list[pd.DataFrame]:
    """``variations`` continuations of a prompt, each a note table of the *new* notes only.

    Times are on the prompt's clock: the first new step starts where the prompt's last note
    ends (rounded up to the grid). Longer than one half window, the model continues its own
    output block by block. Different variations are different prior samples of the latent.
    No block is silent (``decode_audible``).
    """
    model, grid, dec = load_model(model_dir)
    if len(prompt_notes) == 0:
        raise ValueError("the prompt has no notes to continue")
    nd = prompt_notes
    if "is_drum" in nd.columns:
        nd = nd[~nd["is_drum"].astype(bool)]
    end = float((nd["onset_s"] + nd["duration_s"]).max())
    end_step = int(np.ceil(end / grid.step - 1e-9))
    half = model.half
    span = max(end - float(nd["onset_s"].min()), grid.step)
    per_block = int(np.ceil(len(nd) / span * half * grid.step))  # the prompt's density
    g = seeded_generator(seed)
    out = []
    for _ in range(max(1, int(variations))):
        notes = nd[["pitch", "velocity", "onset_s", "duration_s"]].copy()
        new: list[pd.DataFrame] = []
        step, made = end_step, 0.0
        while made < seconds:
            ctx = _context_roll(notes, grid, half, step)
            probs = model.sample(ctx, 1, g)[0].numpy()
            needed = min(half, int(np.ceil((seconds - made) / grid.step - 1e-9)))
            wanted = int(np.ceil(per_block * needed / half))
            block = decode_audible(probs[..., :needed], grid, dec, step * grid.step, wanted)
            new.append(block)
            notes = pd.concat([notes, block[notes.columns]], ignore_index=True)
            step += half
            made += half * grid.step
        cont = pd.concat(new, ignore_index=True)
        cont = cont[cont["onset_s"] < end_step * grid.step + seconds].reset_index(drop=True)
        out.append(cont)
    return out


class VaeContinuer:
    """The saved VAE behind the one continuation interface (``continue_notes``)."""

    def __init__(self, model_dir: str | Path) -> None:
        self.model_dir = Path(model_dir)

    @classmethod
    def load(cls, model_dir: Path, guards: Any = None, top_k: int = 0) -> VaeContinuer:
        """Latent samples need no sampling guards; the model loads on first use."""
        return cls(model_dir)

    def continue_notes(
        self,
        prompt_notes: Any,
        seconds: float,
        temperature: float = 1.0,
        top_p: float = 0.95,
        seed: int = 0,
        genre: str | None = None,
    ) -> dict[str, np.ndarray]:
        """A different latent sample per seed; temperature/top-p/genre do not apply here."""
        prompt = pd.DataFrame({k: np.asarray(v) for k, v in dict(prompt_notes).items()})
        new = continue_with_vae(prompt, seconds, 1, seed, self.model_dir)[0]
        return {
            c: new[c].to_numpy(np.float64) for c in ("pitch", "velocity", "onset_s", "duration_s")
        }


def interpolate_songs(
    notes_a: pd.DataFrame,
    notes_b: pd.DataFrame,
    steps: int = 5,
    segment_seconds: float = 8.0,
    model_dir: str | Path = "models/generators/vae",
) -> pd.DataFrame:
    """A short piece morphing from song A to song B through the latent space.

    Each song's first window is encoded (context code and posterior mean); ``steps``
    segments are decoded at evenly spaced mixes of the two (linear in the context code and
    in the context roll the repetition prior reads, spherical in the latent) and played one
    after another, ``segment_seconds`` each.
    """
    model, grid, dec = load_model(model_dir)
    half = model.half
    codes = []
    for notes in (notes_a, notes_b):
        if len(notes) == 0:
            raise ValueError("a song has no notes")
        start = float(notes["onset_s"].min())
        shifted = notes.assign(onset_s=notes["onset_s"] - start)
        on, fr = onset_frame_rolls(shifted, grid, 2 * half)
        w = torch.from_numpy(np.stack([on.toarray(), fr.toarray()]).astype(np.float32))[None]
        with torch.no_grad():
            ctx_h = model.encode_context(w[..., :half])
            mu, _ = model.posterior(ctx_h, w[..., half:])
        codes.append((ctx_h, mu, w[..., :half]))
    (ha, za, ca), (hb, zb, cb) = codes
    seg_steps = max(1, min(half, int(round(segment_seconds / grid.step))))
    parts = []
    for k, t in enumerate(np.linspace(0.0, 1.0, max(2, steps))):
        z = _slerp(za, zb, float(t))
        with torch.no_grad():
            mix = (1 - t) * ha + t * hb
            probs = torch.sigmoid(model.decode(mix, z, (1 - t) * ca + t * cb))[0].numpy()
        parts.append(decode(probs[..., :seg_steps], grid, dec, offset=k * seg_steps * grid.step))
    return pd.concat(parts, ignore_index=True)


def _slerp(a: torch.Tensor, b: torch.Tensor, t: float) -> torch.Tensor:
    an, bn = a / a.norm(), b / b.norm()
    omega = torch.arccos((an * bn).sum().clamp(-1 + 1e-6, 1 - 1e-6))
    if float(omega) < 1e-4:
        return (1 - t) * a + t * b
    so = torch.sin(omega)
    return torch.sin((1 - t) * omega) / so * a + torch.sin(t * omega) / so * b


def sample_probs(model: RollVAE, windows: torch.Tensor, seed: int) -> np.ndarray:
    return mean_probs(model, windows, seed)


class VaeUseError(ValueError):
    """An expected problem with the user's files or the model: one line for the CLI."""


def interpolate_files(
    file_a: str | Path,
    file_b: str | Path,
    output: str | Path,
    steps: int = 5,
    segment_seconds: float = 8.0,
    model_dir: str | Path = "models/generators/vae",
) -> dict[str, Any]:
    """``midiml interpolate``: read two MIDI files, morph, write one; VaeUseError if not."""
    songs = []
    for f in (file_a, file_b):
        try:
            notes = read_user_file(f).notes
        except (MidiParseError, FileNotFoundError, IsADirectoryError) as exc:
            raise VaeUseError(str(exc)) from exc
        notes = notes[~notes["is_drum"].astype(bool)] if "is_drum" in notes else notes
        if len(notes) == 0:
            raise VaeUseError(f"{f}: no pitched notes to interpolate from")
        songs.append(notes)
    if steps < 2:
        raise VaeUseError(f"--steps must be at least 2, got {steps}")
    if segment_seconds <= 0:
        raise VaeUseError(f"--segment-seconds must be positive, got {segment_seconds}")
    try:
        notes = interpolate_songs(songs[0], songs[1], steps, segment_seconds, model_dir)
    except FileNotFoundError as exc:
        raise VaeUseError(str(exc)) from exc
    write_midi(event_stream(notes), output)
    end = float((notes["onset_s"] + notes["duration_s"]).max()) if len(notes) else 0.0
    return {"notes": len(notes), "seconds": end, "steps": steps}
