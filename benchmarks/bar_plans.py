"""Does the token model realise its bar plans (docs/continuation.md, bar plans)? On
VALIDATION songs only:

    python benchmarks/bar_plans.py --realised     # sampled: planned note bucket vs notes written
    python benchmarks/bar_plans.py --teacher      # teacher forcing: P(end the bar) vs the plan
    python benchmarks/bar_plans.py --bits /tmp/before/transformer old_tokens.npz  # vs a model

``--realised``: every second validation cut of the evaluation (seed 0, default decoding), a
spy on the sampler's ids: per complete new bar, its BarNotes bucket and the notes then
written. ``--teacher``: the first 512 ids of 40 validation sequences, every BarNotes id
shifted by -3 / 0 / +3 buckets; the mean probability the model gives to ending the bar (a
BarNotes id next) at the steps inside bars: a model that reads the plan ends a bar planned
busier later. ``--bits``: bits per note (plan tokens included) of 100 validation songs, this
model against another model directory and its tokens.
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from midiml.generate.transformer_numpy import TransformerContinuer, _log_softmax
from midiml.represent import tokens as tk

MODEL = "models/generators/transformer"
TOKENS = "data/processed/tokens.npz"


def realised(cont: TransformerContinuer) -> None:
    from midiml.config import load_params
    from midiml.generate import continuation_eval as ce

    g, rows, sample = cont.grammar, [], cont.sample

    def spy(*args, **kwargs):
        out = sample(*args, **kwargs)
        for seq in out:
            plan, n = None, 0
            for i in seq:
                if g.plan[0, i] >= 0:
                    if plan is not None:
                        rows.append((plan, n))
                    plan, n = int(g.plan[0, i]), 0
                n += int(g.n_notes[i])
        return out

    cont.sample = spy
    cuts = ce.load_cuts(load_params().model.continuation_eval, "val")[::2]
    for cut in cuts:
        ce.continue_with(cont, cut, 0, ce.NO_GUARDS, 1.0, 0.95)
    r = np.asarray(rows)
    bounds = np.asarray((*tk.BAR_NOTES_BOUNDS, 10**6))
    lo, hi = bounds[r[:, 0]], bounds[r[:, 0] + 1] - 1
    print(
        f"{len(r)} complete new bars of {len(cuts)} validation cuts: notes written inside the "
        f"planned bucket {np.mean((r[:, 1] >= lo) & (r[:, 1] <= hi)):.2f}, below "
        f"{np.mean(r[:, 1] < lo):.2f}, above {np.mean(r[:, 1] > hi):.2f}; planned lower bound "
        f"mean {lo.mean():.1f}, written {r[:, 1].mean():.1f}"
    )
    for b in sorted(set(r[:, 0].tolist())):
        sel = r[:, 0] == b
        print(f"  BarNotes_{tk.BAR_NOTES_BOUNDS[b]:<3d} {sel.sum():4d} bars, written median "
              f"{np.median(r[sel, 1]):5.1f}")  # fmt: skip


def teacher(cont: TransformerContinuer, songs: int = 40) -> None:
    g, net = cont.grammar, cont.net
    with np.load(TOKENS) as z:
        ids, offsets, splits = z["ids"], z["offsets"], z["splits"]
    notes_id = np.full(len(tk.BAR_NOTES_BOUNDS), -1)
    at = np.flatnonzero(g.plan[0] >= 0)
    notes_id[g.plan[0, at]] = at
    ends = g.first_type == tk.BAR_NOTES
    out: dict[int, list[float]] = {-3: [], 0: [], 3: []}
    for r in np.flatnonzero(splits == "val")[:songs]:
        seq = np.asarray(ids[offsets[r] : offsets[r + 1]], np.int64)[: net.context]
        for shift, vals in out.items():
            s = seq.copy()
            plan = g.plan[0, s] >= 0
            s[plan] = notes_id[np.clip(g.plan[0, s[plan]] + shift, 0, len(notes_id) - 1)]
            bars = g.bar_positions(s)
            z = net.forward(s[None, :-1], net.new_cache(1, net.context), 0, bars[None, :-1])[0]
            p = np.exp(_log_softmax(z.astype(np.float64)))
            first = g.first_type[s[:-1]]
            inside = (first != tk.BAR_NOTES) & (first != tk.BAR_POLY) & (np.cumsum(plan)[:-1] > 0)
            vals.append(float(p[inside][:, ends].sum(1).mean()))
    for shift, vals in out.items():
        print(f"BarNotes shifted {shift:+d} buckets: mean P(end the bar) inside bars "
              f"{np.mean(vals):.4f} ({songs} validation songs)")  # fmt: skip


def bits(cont: TransformerContinuer, other: str, other_tokens: str) -> None:
    runs = [("this", cont, TOKENS), (other, TransformerContinuer.load(other), other_tokens)]
    for name, c, path in runs:
        with np.load(path) as z:
            data = {k: z[k] for k in z.files}
        r = c.token_bits(data, "val", 100)
        print(name, json.dumps({k: v for k, v in r.items() if k != "conditioning"}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model-dir", default=MODEL)
    ap.add_argument("--realised", action="store_true")
    ap.add_argument("--teacher", action="store_true")
    ap.add_argument("--bits", nargs=2, metavar=("OTHER_MODEL_DIR", "ITS_TOKENS_NPZ"))
    args = ap.parse_args()
    cont = TransformerContinuer.load(args.model_dir)
    if args.realised:
        realised(cont)
    if args.teacher:
        teacher(cont)
    if args.bits:
        bits(cont, *args.bits)


if __name__ == "__main__":
    main()
