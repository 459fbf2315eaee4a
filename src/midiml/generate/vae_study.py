"""Train the roll VAE three ways (the seed study's, ours without and with the repetition
prior) and judge them on the same test windows.

What the DVC stage calls: one datamodule, the network built from ``model.vae.module`` with
each variant's changes (:data:`VARIANTS`), each fitted
with :func:`midiml.training.fit_lightning`, thresholds chosen on validation windows, then the
continuation metrics of both and of the Markov baseline on the same test prompts.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import pandas as pd
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from midiml import tracking
from midiml.generate.vae import RollVAE, mean_probs, repetition_roll
from midiml.generate.vae_data import RollWindowDataModule, spaced_pairs
from midiml.generate.vae_use import (
    Decoding,
    choose_thresholds,
    evaluate_windows,
    fit_markov,
    save_model,
    window_notes,
)
from midiml.training import fit_lightning

# what each variant changes in the configured network: the study's (plain loss, no
# repetition prior), ours without the repetition prior (the loss cure alone), ours
VARIANTS: dict[str, dict[str, Any]] = {
    "study": {"loss": "plain", "repeat_prior": False},
    "ours_no_repeat": {"repeat_prior": False},
    "ours": {},
}
SUBDIRS = {"study": "study", "ours": "."}  # ours is the model `midiml continue -m vae` loads


def _windows(dm: RollWindowDataModule, split: str, limit: int | None = None) -> torch.Tensor:
    rolls = dm.rolls[split]
    pairs = spaced_pairs(rolls, dm.eval_per_song)
    if limit is not None and len(pairs) > limit:
        pairs = pairs[np.unique(np.linspace(0, len(pairs) - 1, limit).round().astype(int))]
    return torch.stack(
        [torch.from_numpy(rolls.window(int(s), int(t), dm.window)) for s, t in pairs]
    )


def run_study(params: Any, out_dir: str | Path, progress_bar: bool = False) -> dict[str, Any]:
    """Fit both variants (ours into ``out_dir``, the study's into ``out_dir/study``).

    Returns the test table, timings, per-epoch histories and one example window for figures.
    """
    gcfg = params.model.vae
    study = params.model.vae_study
    dm: RollWindowDataModule = instantiate(gcfg.datamodule)
    t0 = time.perf_counter()
    dm.setup("fit")
    setup_seconds = time.perf_counter() - t0
    val = _windows(dm, "val")
    test = _windows(dm, "test", int(study.eval_windows))
    seed = int(study.seed)
    out_dir = Path(out_dir)
    probs: dict[str, np.ndarray] = {}
    decodings: dict[str, Decoding] = {}
    info: dict[str, Any] = {
        "setup_seconds": setup_seconds,
        "train_windows": int(len(dm.rolls["train"].pairs())),
        "val_windows": len(val),
        "test_windows": len(test),
    }
    histories: dict[str, list[dict[str, float]]] = {}
    for variant, changes in VARIANTS.items():
        mcfg = {**OmegaConf.to_container(gcfg.module, resolve=True), **changes}
        # seed before the weights are drawn: torch's own start seed differs in every process
        L.seed_everything(int(params.seed), workers=True, verbose=False)
        model: RollVAE = instantiate(mcfg)
        dm._epoch = 0  # the same training windows for both variants
        res = fit_lightning(
            model,
            dm,
            params,
            run_name=f"vae-{variant}",
            ckpt_dir=out_dir / f"ckpt_{variant}",
            own_max_epochs=int(study.max_epochs),
            progress_bar=progress_bar,
        )
        if res.best_checkpoint is not None:
            state = torch.load(res.best_checkpoint, map_location="cpu", weights_only=False)
            model.load_state_dict(state["state_dict"])
        model = model.float().cpu().eval()
        frame_only = mcfg["loss"] == "plain"
        decodings[variant] = choose_thresholds(
            mean_probs(model, val, seed), val[..., model.half :].numpy(), frame_only
        )
        probs[variant] = mean_probs(model, test, seed)
        if variant in SUBDIRS:
            save_model(
                model,
                out_dir / SUBDIRS[variant],
                dm.grid,
                decodings[variant],
                {"epochs": res.epochs},  # wall time and run id: reports/timings/vae.json
            )
        shutil.rmtree(out_dir / f"ckpt_{variant}", ignore_errors=True)
        histories[variant] = res.history
        info[f"{variant}_train_seconds"] = res.train_seconds
        info[f"{variant}_epochs"] = res.epochs
        info[f"{variant}_run_id"] = res.run_id
        info[f"{variant}_decoding"] = decodings[variant].__dict__
        info[f"{variant}_val_kl"] = res.history[-1].get("val_kl") if res.history else None
    # no model: the context repeated at its best lag, what the repetition prior hands over
    probs["repeat"] = repetition_roll(
        test[..., : test.shape[-1] // 2], int(gcfg.module.get("repeat_min_lag", 16))
    ).numpy()
    decodings["repeat"] = Decoding(0.5, 0.5, False)
    notes = pd.read_parquet(
        dm.notes_path, columns=["file_id", "is_drum", "pitch", "velocity", "onset_s", "duration_s"]
    )
    markov = fit_markov(notes, dm.rolls["train"].file_ids, int(study.markov_order))
    table = evaluate_windows(probs, decodings, test.numpy(), dm.grid, markov, seed)
    example = int(np.argmax([len(window_notes(w, dm.grid)[1]) for w in test.numpy()[:40]]))
    return {
        "table": table,
        "info": info,
        "histories": histories,
        "example": {
            "window": test[example].numpy(),
            "probs": {k: v[example] for k, v in probs.items()},
            "decodings": decodings,
            "grid": dm.grid,
        },
    }


def log_results(
    params: Any, run_id: str | None, metrics: dict[str, float], artifacts: list[Path]
) -> None:
    """Add test metrics and figures (sample rolls, loss curves) to a finished training run."""
    if run_id is None:
        return
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=tracking.tracking_uri(params.get("tracking")))
    for key, value in metrics.items():
        if value == value:  # NaN is not a metric
            client.log_metric(run_id, key, float(value))
    for path in artifacts:
        if Path(path).exists():
            client.log_artifact(run_id, str(path), artifact_path="figures")
