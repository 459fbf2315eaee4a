"""Does the token model keep every instrument of the prompt playing? On the evaluation's cuts
(validation by default), per cut: the prompt's main instrument (its most played non-drum
program) and its other non-drum instruments, in notes per second, in the prompt, the real
continuation and the model's continuations (docs/continuation.md, "Instruments").

    python benchmarks/instruments.py                   # 30 validation cuts x 2 seeds
    python benchmarks/instruments.py --min-p 0 --guidance 0 --loose-plans   # decodings
"""

from __future__ import annotations

import argparse

import numpy as np

from midiml.config import load_params
from midiml.generate import continuation_eval as ce
from midiml.generate.transformer_numpy import TransformerContinuer


def rates(notes, main: int, seconds: float) -> tuple[float, float]:
    """(main instrument, other instruments) non-drum notes per second."""
    drum = np.asarray(notes.get("is_drum", np.zeros(len(notes["pitch"]), bool)), bool)
    prog = np.asarray(notes["program"])[~drum]
    return float((prog == main).sum() / seconds), float((prog != main).sum() / seconds)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", default="models/generators/transformer")
    ap.add_argument("--split", default="val", choices=["val", "test"])
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--min-p", type=float, default=None)
    ap.add_argument("--guidance", type=float, default=None)
    ap.add_argument("--loose-plans", action="store_true")
    args = ap.parse_args()
    cont = TransformerContinuer.load(args.model)
    if args.min_p is not None:
        cont.min_p = args.min_p
    if args.guidance is not None:
        cont.prompt_guidance = args.guidance
    cont.realise_plans = not args.loose_plans
    cuts = ce.load_cuts(load_params().model.continuation_eval, args.split)
    total = np.zeros((3, 2))  # (prompt, real, model) x (main, other), summed over cuts
    print(f"{'cut':44s} {'programs':>8s}  main: prompt real model | other: prompt real model")
    for cut in cuts:
        p = cut.prompt
        drum = np.asarray(p.get("is_drum", np.zeros(len(p["pitch"]), bool)), bool)
        progs = np.asarray(p["program"])[~drum]
        if not len(progs):
            continue
        values, counts = np.unique(progs, return_counts=True)
        main_prog = int(values[counts.argmax()])
        span = cut.cut_s - float(np.min(p["onset_s"]))
        rows = [rates(p, main_prog, span), rates(cut.real, main_prog, cut.seconds)]
        new = [
            rates(
                cont.continue_song(p, cut.seconds, seed=s, genre=cut.genre), main_prog, cut.seconds
            )
            for s in range(args.seeds)
        ]
        rows.append(tuple(np.mean(new, axis=0)))
        r = np.asarray(rows)
        total += r
        if len(values) > 1:
            print(
                f"{cut.file_id[-44:]:44s} {len(values):8d}  {r[0, 0]:5.1f} {r[1, 0]:5.1f} "
                f"{r[2, 0]:5.1f} | {r[0, 1]:5.1f} {r[1, 1]:5.1f} {r[2, 1]:5.1f}"
            )
    ratio = total[2] / np.maximum(total[1], 1e-9)
    print(
        f"{len(cuts)} {args.split} cuts x {args.seeds} seeds, notes per second summed over cuts:"
        f" main instrument prompt {total[0, 0]:.1f}, real {total[1, 0]:.1f}, model "
        f"{total[2, 0]:.1f} ({ratio[0]:.2f} of real); other instruments prompt "
        f"{total[0, 1]:.1f}, real {total[1, 1]:.1f}, model {total[2, 1]:.1f} "
        f"({ratio[1]:.2f} of real)"
    )


if __name__ == "__main__":
    main()
