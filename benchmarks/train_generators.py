"""Benchmark: training wall time of the neural generators on one trainer (cpu or gpu).

`make bench-train TRAINER=gpu` composes the committed defaults with ``trainer=<TRAINER>``,
trains the neural generators (those with a data module: ffnn, lstm_tonedeaf, note_lstm) on
``data/processed/windows.npz`` (run the pipeline first) into a scratch folder, and writes
``generators_train_<TRAINER>`` into ``reports/metrics/benchmarks.json``: seconds, epochs and
best validation loss per model, plus the device name. When both a cpu and a gpu entry exist,
``generators_gpu_speedup`` is their per-model ratio. Nothing is logged to MLflow (a benchmark
is not an experiment).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from omegaconf import OmegaConf

from midiml.config import compose_defaults
from midiml.generate.train import is_neural, train_generator
from midiml.report.benchmarks import record
from midiml.represent.windows import EventData


def device_name(accelerator: str) -> str:
    import torch

    if accelerator == "gpu" and torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    import platform

    return platform.processor() or platform.machine()


def run(
    trainer: str,
    models: list[str],
    windows: str | Path = "data/processed/windows.npz",
    overrides: tuple[str, ...] = (),
) -> dict:
    """Train ``models`` on ``windows`` with the defaults, ``trainer=<trainer>`` and Hydra
    ``overrides``; seconds, epochs and best validation loss per model."""
    params = OmegaConf.create(compose_defaults([f"trainer={trainer}", *overrides]))
    params.tracking.enabled = False
    data = EventData.load(windows)
    out: dict = {"device": device_name(str(params.trainer.accelerator)), "models": {}}
    with tempfile.TemporaryDirectory() as scratch:
        for name in models:
            spec = params.model.generators[name]
            info = train_generator(
                name, spec, params, data, Path(scratch) / name, progress_bar=False
            )
            val = [h["val_loss"] for h in info["history"] if "val_loss" in h]
            out["models"][name] = {
                "train_seconds": round(info["train_seconds"], 2),
                "epochs": info["epochs"],
                "best_val_loss": round(min(val), 4) if val else None,
            }
            print(f"{trainer} {name}: {out['models'][name]}")
    return out


def speedup(result: dict) -> dict | None:
    cpu, gpu = result.get("generators_train_cpu"), result.get("generators_train_gpu")
    if not cpu or not gpu:
        return None
    return {
        m: round(cpu["models"][m]["train_seconds"] / gpu["models"][m]["train_seconds"], 2)
        for m in gpu["models"]
        if m in cpu["models"]
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trainer", default="cpu", help="a conf/trainer option: cpu or gpu")
    generators = compose_defaults([])["model"]["generators"]
    neural = [name for name, spec in generators.items() if is_neural(spec)]
    ap.add_argument("--models", nargs="+", default=neural, choices=neural)
    args = ap.parse_args()
    result = record(f"generators_train_{args.trainer}", run(args.trainer, args.models))
    ratio = speedup(result)
    if ratio:
        record("generators_gpu_speedup", ratio)
        print(f"gpu speed-up: {ratio}")


if __name__ == "__main__":
    main()
