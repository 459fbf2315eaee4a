"""Learning curve of the token Transformer: the pipeline's ``model.transformer`` trained for
another number of epochs, into a scratch folder (never models/).

    python benchmarks/token_learning_curve.py --epochs 12 --out /tmp/tokcurve/e12

trains the committed configuration with ``max_epochs`` and the cosine schedule's
``total_steps`` (= epochs x train_windows / batch_size) both following ``--epochs``, and
writes ``<out>/transformer/`` (the same files as the stage) plus ``<out>/train.json`` (loss
history, wall and CPU seconds). Score it on validation cuts with
``python benchmarks/token_diagnosis.py --models transformer --model-dir <out>/transformer``.
Tracking is off: this is a measurement, not a pipeline run.

    python benchmarks/token_learning_curve.py --copy-share models/generators/transformer

prints the copy head's share under teacher forcing on validation songs (the mean of 1 - gate,
and the share of the target's probability that came through the copy path).
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from pathlib import Path

import numpy as np

from midiml.config import load_params


def copy_share(model_dir: str, n_songs: int = 40) -> dict[str, float]:
    """Teacher forcing on the first ``context`` ids of ``n_songs`` validation sequences (as
    token_diagnosis.past_position_mass does): the mean copy weight 1 - g, the share of the
    target's probability that came through the copy path, and nats per token."""
    from midiml.generate.transformer_numpy import TransformerContinuer

    cont = TransformerContinuer.load(model_dir)
    net, w = cont.net, cont.net.w
    z = np.load("data/processed/tokens.npz")
    val = np.flatnonzero(z["splits"] == "val")
    rows = val[:: max(1, len(val) // n_songs)][:n_songs]
    seen: list[tuple[np.ndarray, np.ndarray]] = []
    orig = net._copy

    def spy(h, ids, logits, cache, start):  # the gate as transformer_numpy._copy computes it
        seen.append((1.0 / (1.0 + np.exp(-(h @ w["copy_gate"] + w["copy_gate_b"]))), logits))
        return orig(h, ids, logits, cache, start)

    net._copy = spy
    weight, share, nll = [], [], []
    for r in rows:
        seq = z["ids"][z["offsets"][r] : z["offsets"][r + 1]].astype(np.int64)[: net.context + 1]
        bars = cont.grammar.bar_positions(seq)
        seen.clear()
        logp = net.forward(seq[None, :-1], net.new_cache(1, net.context), 0, bars[None, :-1])[0]
        gate, vocab = seen[0][0][0, 1:, 0].astype(np.float64), seen[0][1][0, 1:].astype(np.float64)
        tgt = seq[2:]  # skip position 0 (the genre token: nothing earlier to copy)
        lp = logp[1:][np.arange(len(tgt)), tgt].astype(np.float64)
        lv = (
            vocab[np.arange(len(tgt)), tgt]
            - np.log(np.exp(vocab - vocab.max(1, keepdims=True)).sum(1))
            - vocab.max(1)
        )
        nll.extend((-lp).tolist())
        weight.extend((1.0 - gate).tolist())
        share.extend((1.0 - gate * np.exp(lv - lp)).clip(0.0, 1.0).tolist())
    net._copy = orig
    return {
        "songs": len(rows),
        "steps": len(nll),
        "copy_weight": float(np.mean(weight)),
        "copy_share_of_target": float(np.mean(share)),
        "nats_per_token": float(np.mean(nll)),
    }


def export(ckpt: str, model_dir: str, tokens: str) -> None:
    """A checkpoint of a run (e.g. one epoch of a longer one) as a model dir, the way
    ``train_transformer`` writes its best one."""
    from midiml.generate.transformer import TokenTransformer
    from midiml.generate.transformer_numpy import save_model
    from midiml.represent import tokens as tk

    best = TokenTransformer.from_checkpoint(Path(ckpt))
    tokenizer, genres = tk.load_tokenizer(Path(tokens).with_name("tokenizer.json"))
    Path(model_dir).mkdir(parents=True, exist_ok=True)
    save_model(Path(model_dir), best.net.numpy_weights(), best.net.config, tokenizer, genres, {})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int)
    ap.add_argument("--out", help="scratch folder (gets transformer/, train.json)")
    ap.add_argument("--tokens", default="data/processed/tokens.npz")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (cpu_threads)")
    ap.add_argument(
        "--export", nargs=2, metavar=("CKPT", "MODEL_DIR"),
        help="write a run's Lightning checkpoint (one epoch of it) as a model dir, and stop",
    )  # fmt: skip
    ap.add_argument("--copy-share", nargs="+", metavar="MODEL_DIR", help="measure, not train")
    ap.add_argument("--seed", type=int, default=None, help="params.seed and the window draw's")
    ap.add_argument("--genre-power", type=float, default=None, help="datamodule.genre_power")
    ap.add_argument(
        "--no-pack", action="store_true", help="pad short songs instead of packing them"
    )
    ap.add_argument(
        "--precision",
        default=None,
        help="model.transformer.precision: auto, bf16-mixed, 32-true ...",
    )
    ap.add_argument("--d-model", type=int, default=None, help="module.net.d_model (a wider model)")
    args = ap.parse_args()
    if args.copy_share:
        for model_dir in args.copy_share:
            print(model_dir, json.dumps(copy_share(model_dir)))
        return
    if args.export:
        export(*args.export, args.tokens)
        return
    from midiml.generate.transformer import train_transformer  # torch: only to train

    params = load_params()
    params.tracking.enabled = False
    if args.threads:  # one thread wastes less CPU on a machine shared with other jobs
        params.cpu_threads = args.threads
    cfg = params.model.transformer
    dm = cfg.datamodule
    if args.seed is not None:  # one training run is not a measurement: compare seeds
        params.seed = dm.seed = args.seed
    if args.genre_power is not None:
        dm.genre_power = args.genre_power
    if args.no_pack:
        dm.pack = False
    if args.d_model:
        cfg.module.net.d_model = args.d_model
    if args.precision:  # the model's own (auto: bf16-mixed on a CPU with native bf16)
        cfg.precision = args.precision
    # the schedule's length follows the epochs, as the committed 1750 = 10 x 1400 / 8 does
    cfg.module.total_steps = args.epochs * int(dm.train_windows) // int(dm.batch_size)
    cfg.max_epochs = args.epochs
    params.trainer.max_epochs = max(int(params.trainer.max_epochs), args.epochs)
    out = Path(args.out)
    model_dir = out / "transformer"
    model_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    info = train_transformer(
        cfg, params, args.tokens, Path(args.tokens).with_name("tokenizer.json"), model_dir
    )
    usage = resource.getrusage(resource.RUSAGE_SELF)
    info["process_wall_seconds"] = time.perf_counter() - t0
    info["process_cpu_seconds"] = usage.ru_utime + usage.ru_stime
    info["total_steps"] = int(cfg.module.total_steps)
    (out / "train.json").write_text(json.dumps(info, indent=1))
    print(
        f"{args.epochs} epochs: {info['train_tokens']} tokens, best val "
        f"{info['best_val_loss_nats_per_token']:.4f} nats/token "
        f"({info['best_val_bits_per_token']:.4f} bits), {info['train_seconds']:.0f} s wall, "
        f"{info['train_cpu_seconds']:.0f} CPU-s"
    )


if __name__ == "__main__":
    main()
