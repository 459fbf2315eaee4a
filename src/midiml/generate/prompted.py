"""Continue any prompt with >= 1 note: the one continuation interface every generator offers.

Interface (what `midiml continue`, the listening evaluation and any new generator share)::

    continue_notes(prompt_notes, seconds, temperature=1.0, top_p=0.95, seed=0, genre=None)
        -> {pitch, velocity, onset_s, duration_s}

``prompt_notes`` is a notes table: a pandas DataFrame in the ingest schema or any mapping of
column name -> array (``pitch``, ``velocity``, ``onset_s``, ``duration_s``; rows with a true
``is_drum`` are ignored). The result is the same kind of mapping (``pd.DataFrame(result)``
makes a table) holding only the *new* notes, on the prompt's time axis: the first starts
when the prompt ends. Mappings rather than DataFrames keep pandas off `midiml continue`'s
start-up path. A generator class that implements this method
plugs into the CLI and the metrics without anything else; ``WindowContinuer`` adapts the
next-pitch generators (Markov, forest, networks) to it.

Why guards: a next-pitch model trained on flattened polyphonic songs spreads its probability
over bass, chord and melody pitches, so free sampling leaves the key and turns steps into
leaps. The guards are documented sampling options (on by default; ``SamplingGuards(False,
False, False)`` turns them off) that reweight the model's distribution by what the prompt
itself shows: its key (Krumhansl-Kessler), its register (pitch range) and its step sizes.
Short prompts are fine: the context window is filled by looping the prompt.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from midiml.generate.base import N_PITCHES, Generator
from midiml.represent.tonality import estimate_key
from midiml.represent.windows import DELTA, DURATION, PITCH, VELOCITY

NOTE_FIELDS = ("pitch", "velocity", "onset_s", "duration_s")
NoteColumns = Mapping[str, np.ndarray]
MAX_NEW_NOTES = 4000  # cap for prompts whose notes are packed in tiny gaps


class Continuer(Protocol):
    """Anything that continues a prompt; see the module docstring for the contract."""

    def continue_notes(
        self,
        prompt_notes: NoteColumns,
        seconds: float,
        temperature: float = 1.0,
        top_p: float = 0.95,
        seed: int = 0,
        genre: str | None = None,
    ) -> dict[str, np.ndarray]: ...


@dataclass(frozen=True)
class SamplingGuards:
    """Reweighting of the model's next-pitch distribution by the prompt (all on by default).

    key: pitch classes of the prompt's key keep weight 1 if the prompt plays them,
        ``key_unplayed`` if not, ``key_leak`` outside the key.
    register: pitches more than ``register_margin`` semitones outside the prompt's range get 0,
        and a Gaussian around the prompt's median pitch (sd = ``register_spread`` x the prompt's
        pitch sd, at least 2) pulls the melody back instead of letting it drift to one edge.
    steps: the step size |pitch - previous pitch| is drawn from the prompt's own step-size
        histogram (smoothed by a Laplace prior with the prompt's mean step; ``step_strength``
        1 = exactly, 0 = the model's own; steps are damped by exp(-step / (``step_taper`` x
        the prompt's mean step)); the model decides the direction and which pitch
        among those of that size. So a stepwise melody continues
        stepwise and an arpeggio keeps its skips, whatever leaps the model learned from
        flattened chords.

    repeats: a pitch may repeat at most as many times in a row as the prompt repeats one, and
        each use of another pitch among the last ``recent`` new notes divides its weight by
        (1 + ``recent_penalty``), so the melody does not stall on one note or ping-pong.
    """

    key: bool = True
    register: bool = True
    steps: bool = True
    repeats: bool = True
    key_leak: float = 0.01
    key_unplayed: float = 0.1
    register_margin: int = 4
    register_spread: float = 1.5
    step_smoothing: float = 0.15
    step_strength: float = 1.0
    step_taper: float = 3.0
    recent: int = 8
    recent_penalty: float = 0.2


def column(notes: NoteColumns, name: str, dtype: type = np.float64) -> np.ndarray:
    return np.asarray(notes[name], dtype=dtype).reshape(-1)


def pitched(notes: NoteColumns) -> dict[str, np.ndarray]:
    """The non-drum notes' four columns, ordered by (onset, pitch)."""
    keep = ~column(notes, "is_drum", bool) if "is_drum" in notes else slice(None)
    cols = {name: column(notes, name)[keep] for name in NOTE_FIELDS}
    order = np.lexsort((cols["pitch"], cols["onset_s"]))
    return {name: v[order] for name, v in cols.items()}


def prompt_events(notes: NoteColumns) -> np.ndarray:
    """Non-drum notes -> (N, 4) ``[pitch, velocity, delta_onset, duration]`` events."""
    cols = pitched(notes)
    onset = cols["onset_s"]
    delta = np.maximum(np.diff(onset, prepend=onset[:1]), 0.0)
    return np.stack([cols["pitch"], cols["velocity"], delta, cols["duration_s"]], 1).astype(
        np.float32
    )


def static_weights(events: np.ndarray, guards: SamplingGuards) -> np.ndarray:
    """(128,) weights from the prompt's key and register (1 where a guard is off)."""
    pitch = events[:, PITCH].astype(np.int64)
    w = np.ones(N_PITCHES)
    if guards.key:
        key = estimate_key(pitch, events[:, DURATION])
        played = np.bincount(pitch % 12, minlength=12) > 0
        pc_w = np.where(key.scale, np.where(played, 1.0, guards.key_unplayed), guards.key_leak)
        w *= pc_w[np.arange(N_PITCHES) % 12]
    if guards.register:
        lo, hi = pitch.min() - guards.register_margin, pitch.max() + guards.register_margin
        w[: max(lo, 0)] = 0.0
        w[hi + 1 :] = 0.0
        sd = max(float(pitch.std()), 2.0) * guards.register_spread
        w *= np.exp(-0.5 * ((np.arange(N_PITCHES) - np.median(pitch)) / sd) ** 2)
    return w


def step_weights(events: np.ndarray, guards: SamplingGuards) -> np.ndarray:
    """(128,) weight of each |step| 0..127 from the prompt's step sizes (ones if off)."""
    if not guards.steps:
        return np.ones(N_PITCHES)
    steps = np.abs(np.diff(events[:, PITCH].astype(np.int64)))
    scale = max(float(steps.mean()) if len(steps) else 2.0, 1.0)
    laplace = np.exp(-np.arange(N_PITCHES) / scale)
    laplace /= laplace.sum()
    if len(steps) == 0:
        return laplace
    hist = np.bincount(steps, minlength=N_PITCHES)[:N_PITCHES].astype(float)
    hist /= hist.sum()
    mixed = (1 - guards.step_smoothing) * hist + guards.step_smoothing * laplace
    # a tail taper: 35 new notes drawn from a 13-step histogram overshoot its mean by chance
    # (and the repeat cap turns forbidden repeats into steps), so rare leaps are damped
    return mixed * np.exp(-np.arange(N_PITCHES) / (guards.step_taper * scale))


def match_steps(
    probs: np.ndarray, prev: int, target: np.ndarray, strength: float = 1.0, floor: float = 0.01
) -> np.ndarray:
    """Rescale ``probs`` so the mass on each step size |p - prev| moves towards ``target``.

    ``strength`` 1 matches the target exactly, 0 leaves ``probs``; step sizes holding less than
    ``floor`` of the mass (e.g. only out-of-key pitches) are not boosted, so matching never
    brings back what the other guards removed.
    """
    dist = np.abs(np.arange(N_PITCHES) - prev)
    mass = np.bincount(dist, weights=probs, minlength=N_PITCHES)
    total = mass.sum()
    if total <= 0:
        return probs
    ok = mass >= floor * total
    goal = np.where(ok, target, 0.0)
    if goal.sum() <= 0:
        return probs
    goal = goal / goal.sum() * mass[ok].sum()
    ratio = np.divide(goal, mass, out=np.ones_like(goal), where=ok)
    return probs * np.where(ok, ratio**strength, 1.0)[dist]


def longest_run(pitches: np.ndarray) -> int:
    """Most times one pitch sounds in a row (1 for no repeats)."""
    p = np.asarray(pitches, np.int64)
    if len(p) == 0:
        return 1
    change = np.flatnonzero(np.diff(p) != 0)
    bounds = np.r_[-1, change, len(p) - 1]
    return int(np.diff(bounds).max())


def sample_row(
    probs: np.ndarray, temperature: float, top_k: int, top_p: float, rng: np.random.Generator
) -> int:
    """One draw from a (128,) weight vector with temperature, top-k and nucleus (top-p)."""
    p = np.clip(np.asarray(probs, np.float64), 0.0, None)
    if p.sum() <= 0:
        p = np.ones_like(p)
    if temperature <= 0:
        return int(p.argmax())
    logp = np.where(p > 0, np.log(np.where(p > 0, p, 1.0)), -np.inf) / float(temperature)
    logp -= logp.max()
    q = np.exp(logp)
    q /= q.sum()
    order = np.argsort(-q, kind="stable")
    keep = len(order)
    if top_k and 0 < top_k < keep:
        keep = top_k
    if 0 < top_p < 1:
        keep = min(keep, int(np.searchsorted(np.cumsum(q[order]), top_p) + 1))
    idx = order[:keep]
    qq = q[idx] / q[idx].sum()
    return int(idx[min(int((np.cumsum(qq) < rng.random()).sum()), keep - 1)])


class WindowContinuer:
    """Adapts a next-pitch ``Generator`` to ``continue_notes`` (rhythm from the prompt)."""

    # the new notes' onsets, durations and chord sizes are the prompt's, looped: the model
    # only picks pitches (so it is not eligible as the default: choose_default)
    replays_prompt_rhythm = True

    def __init__(self, gen: Generator, guards: SamplingGuards | None = None, top_k: int = 0):
        self.gen = gen
        self.guards = guards if guards is not None else SamplingGuards()
        self.top_k = top_k

    def continue_notes(
        self,
        prompt_notes: NoteColumns,
        seconds: float,
        temperature: float = 1.0,
        top_p: float = 0.95,
        seed: int = 0,
        genre: str | None = None,
    ) -> dict[str, np.ndarray]:
        """New notes after the prompt for ``seconds`` (genre is ignored: not conditioned)."""
        events = prompt_events(prompt_notes)
        if len(events) == 0:
            raise ValueError("the prompt has no (non-drum) notes to continue")
        rng = np.random.default_rng(seed)
        n = len(events)
        onset = np.cumsum(events[:, DELTA].astype(np.float64))
        start0 = float(pitched(prompt_notes)["onset_s"][0])  # the event stream's time zero
        end = float((onset + events[:, DURATION]).max())
        positive = events[1:, DELTA][events[1:, DELTA] > 0]
        beat = float(np.median(positive)) if len(positive) else max(float(events[-1, 3]), 0.25)
        first_gap = max(end - onset[-1], beat)
        # context: the prompt looped to fill the model's window, prompt last
        reps = -(-self.gen.n_in // n) + 1
        ctx = np.tile(events, (reps, 1))[-self.gen.n_in :][None].astype(np.float32)
        static = static_weights(events, self.guards)
        stepw = step_weights(events, self.guards)
        max_run = longest_run(events[:, PITCH]) if self.guards.repeats else N_PITCHES
        run = longest_run(events[-1:, PITCH])
        prev = int(events[-1, PITCH])
        new: list[tuple[int, int, float, float]] = []
        t = onset[-1]
        chord: set[int] = set()
        for i in range(MAX_NEW_NOTES):
            src = events[i % n]
            delta = first_gap if i == 0 else float(src[DELTA])
            if i > 0 and i % n == 0:
                delta = first_gap  # the loop of the prompt's rhythm restarts
            t += delta
            if t - end >= seconds:
                break
            if delta > 0:
                chord = set()
            probs = self.gen.next_pitch_proba(ctx)[0] * static
            if self.guards.steps:
                probs = match_steps(probs, prev, stepw, self.guards.step_strength)
            if chord:
                probs[list(chord)] = 0.0
            if self.guards.repeats:
                if run >= max_run and probs.sum() > probs[prev]:
                    probs[prev] = 0.0
                recent = [p for p, *_ in new[-self.guards.recent :]]
                if recent:
                    counts = np.bincount(recent, minlength=N_PITCHES)
                    counts[prev] = 0  # repeating the last note is the run cap's business
                    probs = probs / (1.0 + self.guards.recent_penalty * counts)
            pitch = sample_row(probs, temperature, self.top_k, top_p, rng)
            chord.add(pitch)
            run = run + 1 if pitch == prev else 1
            new.append((pitch, int(src[VELOCITY]), t, float(src[DURATION])))
            ev = np.array([[pitch, src[VELOCITY], delta, src[DURATION]]], np.float32)
            ctx = np.concatenate([ctx[:, 1:], ev[None]], axis=1)
            prev = pitch
        table = np.array(new, np.float64).reshape(-1, 4)
        table[:, 2] += start0
        table = table[np.lexsort((table[:, 0], table[:, 2]))]
        return {name: table[:, i] for i, name in enumerate(NOTE_FIELDS)}
