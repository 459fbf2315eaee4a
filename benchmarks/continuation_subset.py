"""The `evaluate_generators` continuation table for a few models only, on the stage's own
held-out cuts (test split, `model.continuation_eval` settings): the references, the floor and
the named generators (with and without guards), per genre, with novelty and C2ST. For final
figures only; choose settings on validation songs (benchmarks/token_diagnosis.py).

    python benchmarks/continuation_subset.py --models transformer markov
    python benchmarks/continuation_subset.py --models transformer --models-dir /tmp/other
    python benchmarks/continuation_subset.py --split val --temperature 0.9  # choose here
    python benchmarks/continuation_subset.py --split val --models transformer --seeds 4 \
        --min-p 0.2 --guidance 0.5          # the token model's decoding (docs/continuation.md)
    python benchmarks/continuation_subset.py --split val --models transformer --plan held

``--split val`` takes the same number of validation songs by the same cut rules
(`load_cuts`), so settings are chosen there and the test table is run once at the end.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from midiml.config import load_params
from midiml.evaluate import continuation as cm
from midiml.generate import continuation_eval as ce


def follow_slopes(cuts: list, samples: dict) -> dict[str, dict[str, float]]:
    """How a row follows its prompt, per cut and seed: the log-log slope (and correlation)
    of its pitched notes per second on the prompt's, and of its notes per onset on the
    prompt's; the real continuation as the row "real" (docs/continuation.md)."""
    prompt = [ce.pitched(c.prompt) for c in cuts]
    span = [max(c.cut_s - float(np.min(p["onset_s"], initial=c.cut_s)), 1e-3) for c, p in
            zip(cuts, prompt, strict=True)]  # fmt: skip
    rows = {"real": [[c.real] for c in cuts]} | samples
    out = {}
    for name, per_cut in rows.items():
        pts = {"rate": [], "per_onset": []}
        for c, p, sp, news in zip(cuts, prompt, span, per_cut, strict=True):
            for new in news:
                new = ce.pitched(new)
                pts["rate"].append((len(p["pitch"]) / sp, len(new["pitch"]) / c.seconds))
                pts["per_onset"].append((cm.notes_per_onset(p), cm.notes_per_onset(new)))
        out[name] = {}
        for key, xy in pts.items():
            xy = np.log(np.asarray([v for v in xy if v[0] > 0 and v[1] > 0]))
            out[name][f"{key}_slope"] = float(np.polyfit(xy[:, 0], xy[:, 1], 1)[0])
            out[name][f"{key}_corr"] = float(np.corrcoef(xy[:, 0], xy[:, 1])[0, 1])
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--models", nargs="+", default=["transformer", "markov"])
    ap.add_argument("--models-dir", default="models/generators")
    ap.add_argument("--json", default=None, help="write the table here")
    ap.add_argument("--split", default="test", choices=["test", "val"], help="whose songs")
    ap.add_argument("--seeds", type=int, default=None, help="sampling seeds (config: 2)")
    ap.add_argument("--temperature", type=float, default=None, help="config's when omitted")
    ap.add_argument("--top-p", type=float, default=None, help="config's when omitted")
    ap.add_argument("--min-p", type=float, default=None, help="token model (default: its own)")
    ap.add_argument("--guidance", type=float, default=None, help="token model's prompt guidance")
    ap.add_argument(
        "--no-onset-rule", action="store_true", help="token model: let an instrument go on "
        "adding notes at an onset after repeating a pitch there",
    )  # fmt: skip
    ap.add_argument(
        "--plan", default=None, choices=["free", "held"], help="token model's bar plans"
    )
    ap.add_argument(
        "--loose-plans", action="store_true", help="token model: let a bar end short of (or "
        "run past) its own BarNotes plan",
    )  # fmt: skip
    ap.add_argument("--by-genre", action="store_true", help="also every measure per genre")
    args = ap.parse_args()
    decoding: dict[str, object] = {}
    if args.loose_plans:
        decoding["realise_plans"] = False
    if args.plan is not None:
        decoding["plan"] = args.plan
    if args.min_p is not None:
        decoding["min_p"] = args.min_p
    if args.guidance is not None:
        decoding["prompt_guidance"] = args.guidance
    if args.no_onset_rule:
        decoding["close_repeats"] = False
    cfg = load_params().model.continuation_eval
    cuts = ce.load_cuts(cfg, args.split)
    seeds = [int(cfg.seed) + i for i in range(args.seeds or int(cfg.seeds))]
    temperature = float(cfg.temperature if args.temperature is None else args.temperature)
    top_p = float(cfg.top_p if args.top_p is None else args.top_p)
    samples, rows, seconds = ce.run_rows(
        cuts, Path(args.models_dir), args.models, seeds, temperature, top_p, decoding
    )
    table = cm.continuation_table(
        [ce.pitched(c.prompt) for c in cuts], [c.real for c in cuts], [c.genre for c in cuts],
        [c.seconds for c in cuts], samples, int(cfg.seed),
    )  # fmt: skip
    genres = sorted({c.genre for c in cuts})
    print(
        f"{len(cuts)} {args.split} cuts x {len(seeds)} seeds; T {temperature}, top-p {top_p}"
        + (f", {decoding}" if decoding else "")
    )
    head = ["score", *cm.MEASURES, "novelty", "empty"]
    print(f"{'row':18s} " + " ".join(f"{h[:8]:>8s}" for h in head) + "  " + " / ".join(genres))
    for name, t in table.items():
        a = t["all"]
        by = " / ".join(f"{t[g]['score']:.3f}" for g in genres)
        c2st = t.get("c2st_accuracy")
        print(
            f"{name:18s} " + " ".join(f"{a.get(h, float('nan')):8.3f}" for h in head) + f"  {by}"
            + (f"  C2ST {c2st:.2f}" if c2st is not None else "")
            + (f"  cpu {seconds[name]['cpu']:.1f}s" if name in seconds else "")
        )  # fmt: skip
    if args.by_genre:
        for g in genres:
            print(f"-- {g}")
            for name, t in table.items():
                print(f"{name:18s} " + " ".join(f"{t[g].get(h, float('nan')):8.3f}" for h in head))
    print("default among these:", cm.choose_default(table, rows))
    print("following the prompt (log-log slope on the prompt's, corr): notes/s | notes/onset")
    for name, f in follow_slopes(cuts, samples).items():
        print(
            f"{name:18s} {f['rate_slope']:.2f} ({f['rate_corr']:.2f}) | "
            f"{f['per_onset_slope']:.2f} ({f['per_onset_corr']:.2f})"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(table, indent=1, default=float))


if __name__ == "__main__":
    main()
