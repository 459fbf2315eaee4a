"""Why the token Transformer's continuations score as they do: continue VALIDATION songs (never
the held-out test songs of the evaluation table) and compare, per song, what comes out with
the prompt and the real continuation: score and its five measures, where the first new onset
falls after the cut, how much of the new onsets sit on the 16th/triplet grid, notes per bar,
notes per onset, median duration, programs.

    python benchmarks/token_diagnosis.py --models transformer markov --songs 6
    python benchmarks/token_diagnosis.py --temperature 0.9 --top-p 0.9   # decoding on val songs
    python benchmarks/token_diagnosis.py --model-dir /tmp/tf_copy --models transformer
    python benchmarks/token_diagnosis.py --models transformer --mask-mass  # do masks starve it?
    python benchmarks/token_diagnosis.py --models transformer --density  # where notes go missing
    python benchmarks/token_diagnosis.py --models transformer --bar-positions  # knows the bar?

Prints one line per song and row, then the mean per row (all genres weigh the same).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from midiml.config import load_params
from midiml.evaluate import continuation as cm
from midiml.generate import continuation_eval as ce
from midiml.represent import tokens as tk


def validation_cuts(n_per_genre: int, seed: int = 1) -> list[ce.Cut]:
    """The evaluation's cuts (its settings: 8 bars, 12 s) of validation-split songs."""
    cfg = load_params().model.continuation_eval
    return ce.load_cuts(cfg, "val", n_per_genre=n_per_genre, seed=seed)


class DensitySpy:
    """Counts, per continuation of the token model, where notes could go missing: ids drawn
    against the step budget, note (Duration) tokens sampled, notes decoded from them, notes
    kept inside the asked span."""

    def __init__(self, cont) -> None:
        self.cont, self.calls = cont, []
        sample, new_notes = cont.sample, cont._new_notes

        def spy_sample(prompt, genre_id, start_beat, end_beat, programs, n, *args):
            seqs = sample(prompt, genre_id, start_beat, end_beat, programs, n, *args)
            budget = cont.step_budget(start_beat, end_beat)
            for seq in seqs:
                base = np.asarray(cont.grammar.base_ids(seq), np.int64)
                g = cont.grammar
                notes = tk.decode_notes(base, g.types, g.values, g.res)
                self.calls.append(
                    {
                        "ids": len(seq),
                        "budget": budget,
                        "note_tokens": int((g.types[base] == tk.DURATION).sum()),
                        "decoded": len(notes["pitch"]),
                    }
                )
            return seqs

        def spy_new_notes(*args):
            out = new_notes(*args)
            self.calls[-1]["kept"] = len(out["pitch"])
            return out

        cont.sample, cont._new_notes = spy_sample, spy_new_notes

    def summary(self) -> dict[str, float]:
        keys = ("ids", "budget", "note_tokens", "decoded", "kept")
        tot = {k: float(sum(c.get(k, 0) for c in self.calls)) for k in keys}
        tot["max_share_of_budget"] = max(c["ids"] / c["budget"] for c in self.calls)
        return tot


def onsets_per_bar(notes: dict, bars: float) -> float:
    return len(np.unique(np.round(np.asarray(notes["onset_beats"], np.float64), 3))) / bars


def past_position_mass(cont, n_songs: int = 30) -> dict[str, float]:
    """Teacher forcing on validation token sequences: of the probability the model gives to
    ids that open a new onset in the current bar (a Position before any Bar), the share on
    positions at or before the current one (impossible in REMI; sampling masks them) and on
    the true next position, at the steps whose target opens one."""
    z = np.load("data/processed/tokens.npz")
    g, net = cont.grammar, cont.net
    val = np.flatnonzero(z["splits"] == "val")
    rows = val[:: max(1, len(val) // n_songs)][:n_songs]
    fp = g.first_pos
    opens = fp >= 0
    past, right = [], []
    for r in rows:
        seq = z["ids"][z["offsets"][r] : z["offsets"][r + 1]].astype(np.int64)[: net.context]
        bars = g.bar_positions(seq)
        lg = net.forward(seq[None, :-1], net.new_cache(1, net.context), 0, bars[None, :-1])[0]
        p = np.exp(lg - lg.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        pos = bars[:-1] - 1  # position after each input id (-1: none yet in the bar)
        steps = np.flatnonzero(opens[seq[1:]])
        for i in steps:
            mass = p[i, opens].sum()
            past.append(p[i, opens & (fp <= pos[i])].sum() / mass)
            right.append(p[i, fp == fp[seq[i + 1]]].sum() / mass)
    return {"steps": len(past), "past": float(np.mean(past)), "right": float(np.mean(right))}


def onset_stats(notes: dict, cut: ce.Cut) -> dict[str, float]:
    """First onset after the cut (beats), share on a 1/4 or 1/3-beat grid, notes per bar."""
    on = np.asarray(notes["onset_beats"], np.float64)
    if len(on) == 0:
        return {"first": np.nan, "grid": np.nan, "per_bar": 0.0, "nps": 0.0, "dur": np.nan}
    frac = np.mod(on, 1.0)
    grid = np.minimum(
        np.abs(frac * 4 - np.round(frac * 4)) / 4, np.abs(frac * 3 - np.round(frac * 3)) / 3
    )
    bars = cut.seconds / max(float(cut.clock.seconds(cut.cut_beat + cut.bar)) - cut.cut_s, 1e-3)
    return {
        "first": float(on.min() - cut.cut_beat),
        "grid": float((grid < 0.02).mean()),
        "per_bar": len(on) / max(bars, 1e-3),
        "nps": cm.notes_per_onset(notes),
        "dur": float(np.median(notes["duration_s"])),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--models", nargs="+", default=["transformer", "markov"])
    ap.add_argument("--model-dir", default=None, help="a transformer model dir to use instead")
    ap.add_argument("--songs", type=int, default=6, help="validation songs per genre")
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--temperature", type=float, default=1.0)
    ap.add_argument("--top-p", type=float, default=0.95)
    ap.add_argument("--quiet", action="store_true")
    ap.add_argument(
        "--mask-mass", action="store_true", help="share of the token model's probability the "
        "sampling masks leave, and how often they mask its likeliest token",
    )  # fmt: skip
    ap.add_argument(
        "--density", action="store_true", help="notes per bar and onsets per bar of prompt, "
        "real and token-model continuation; ids drawn vs budget, note tokens vs notes decoded",
    )  # fmt: skip
    ap.add_argument(
        "--bar-positions", action="store_true", help="teacher forcing on validation tokens: "
        "the token model's onset mass on positions already past",
    )  # fmt: skip
    ap.add_argument("--json", default=None, help="write the means here")
    args = ap.parse_args()
    cuts = validation_cuts(args.songs)
    rows: dict[str, tuple] = {
        "loop": (None, None),
        "next_section": (None, None),
        "random": (None, None),
    }
    refs = ce.references()
    for name in args.models:
        if name == "transformer" and args.model_dir:
            from midiml.generate.transformer_numpy import TransformerContinuer

            rows[name] = (TransformerContinuer.load(args.model_dir), ce.NO_GUARDS)
        else:
            for row, (cont, guards, _) in ce.model_rows(Path("models/generators"), [name]).items():
                rows[row] = (cont, guards)
    mass: list[float] = []
    top_masked: list[bool] = []
    if args.mask_mass and "transformer" in rows:
        cont = rows["transformer"][0]
        draw = cont._draw

        def spy(logits, allowed, temperature, top_p, rng):
            z = logits.astype(np.float64)
            p = np.exp(z - z.max(1, keepdims=True))
            p /= p.sum(1, keepdims=True)
            mass.extend((p * allowed).sum(1).tolist())
            top_masked.extend((~allowed[np.arange(len(z)), z.argmax(1)]).tolist())
            return draw(logits, allowed, temperature, top_p, rng)

        cont._draw = spy
    density = DensitySpy(rows["transformer"][0]) if args.density and "transformer" in rows else None
    if args.bar_positions and "transformer" in rows:
        bp = past_position_mass(rows["transformer"][0])
        print(
            f"bar positions (teacher forcing, {bp['steps']} steps opening an onset): onset mass "
            f"on positions already past {bp['past']:.3f}, on the right position {bp['right']:.3f}"
        )
    means: dict[str, dict] = {}
    for row, (cont, guards) in rows.items():
        t0 = time.process_time()
        per_genre: dict[str, list[dict]] = {}
        for cut in cuts:
            real_stats = onset_stats(cut.real, cut)
            for s in range(args.seeds):
                if cont is None:
                    new = refs[row](cut, s)
                else:
                    try:
                        new = ce.continue_with(cont, cut, s, guards, args.temperature, args.top_p)
                    except ValueError:
                        new = {c: np.zeros(0) for c in ce.COLUMNS}
                m = cm.continuation_row(ce.pitched(cut.prompt), new, cut.real)
                st = onset_stats(new, cut)
                prompt_bars = (cut.cut_beat - cut.start_beat) / cut.bar
                bars = cut.seconds / max(
                    float(cut.clock.seconds(cut.cut_beat + cut.bar)) - cut.cut_s, 1e-3
                )
                st |= {
                    "onsets_bar": onsets_per_bar(new, bars),
                    "prompt_per_bar": len(ce.pitched(cut.prompt)["pitch"]) / prompt_bars,
                    "prompt_onsets_bar": onsets_per_bar(ce.pitched(cut.prompt), prompt_bars),
                    "real_onsets_bar": onsets_per_bar(cut.real, bars),
                }
                m |= {f"{k}": v for k, v in st.items()}
                m |= {f"real_{k}": v for k, v in real_stats.items()}
                per_genre.setdefault(cut.genre, []).append(m)
                if not args.quiet and s == 0:
                    print(
                        f"{row:18s} {cut.genre:9s} {cut.file_id[-28:]:28s} score {m['score']:.2f} "
                        f"rh {m['rhythm']:.2f} den {m['density']:.2f} tex {m['texture']:.2f} | "
                        f"first {st['first']:5.2f}b grid {st['grid']:.2f} "
                        f"n/bar {st['per_bar']:5.1f} (real {real_stats['per_bar']:5.1f}) "
                        f"n/onset {st['nps']:.2f} (real {real_stats['nps']:.2f}) "
                        f"dur {st['dur']:.2f}s (real {real_stats['dur']:.2f})"
                    )
        keys = list(next(iter(per_genre.values()))[0])
        genre_means = {
            g: {k: float(np.nanmean([r[k] for r in rs])) for k in keys}
            for g, rs in per_genre.items()
        }
        means[row] = {k: float(np.mean([gm[k] for gm in genre_means.values()])) for k in keys} | {
            "by_genre": {g: round(gm["score"], 3) for g, gm in genre_means.items()}
        }
        means[row]["cpu_s"] = time.process_time() - t0
    print(f"\n{len(cuts)} validation cuts x {args.seeds} seeds;", end=" ")
    print(f"T={args.temperature} p={args.top_p}")
    cols = ["score", *cm.MEASURES, "novelty", "first", "grid", "per_bar", "real_per_bar", "nps"]
    print("row                " + " ".join(f"{c[:8]:>8s}" for c in cols) + "  by genre")
    for row, m in means.items():
        print(f"{row:18s} " + " ".join(f"{m[c]:8.3f}" for c in cols) + f"  {m['by_genre']}")
    if mass:
        m = np.asarray(mass)
        print(
            f"masks: {len(m)} steps, allowed mass mean {m.mean():.3f} median {np.median(m):.3f}, "
            f"steps under 50% {np.mean(m < 0.5):.3f}, likeliest token masked "
            f"{np.mean(top_masked):.3f}"
        )
    if args.density:
        cols = ["prompt_per_bar", "real_per_bar", "per_bar", "prompt_onsets_bar"]
        cols += ["real_onsets_bar", "onsets_bar", "nps", "real_nps"]
        print("\nnotes and onsets per bar (pitched notes; means over genres):")
        print("row                " + " ".join(f"{c[:10]:>10s}" for c in cols))
        for row, m in means.items():
            print(f"{row:18s} " + " ".join(f"{m[c]:10.2f}" for c in cols))
    if density is not None and density.calls:
        d = density.summary()
        print(
            f"token model, {len(density.calls)} continuations: ids drawn {d['ids']:.0f} of a "
            f"budget of {d['budget']:.0f} (at most {d['max_share_of_budget']:.1%} of one), "
            f"note tokens sampled {d['note_tokens']:.0f}, notes decoded {d['decoded']:.0f}, "
            f"kept in the asked span {d['kept']:.0f} (all instruments, drums included)"
        )
        means["transformer"]["density_counts"] = d
    if args.json:
        Path(args.json).write_text(json.dumps(means, indent=1))


if __name__ == "__main__":
    main()
