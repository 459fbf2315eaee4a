"""The Lightning Trainer is built from config: every ``trainer.*`` key reaches it, DDP included."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import lightning as L
import pytest

from midiml.generate.train import train_generator
from tests.conftest import REPO, tiny_params
from tests.test_generators import scale_data


class Seen(L.Callback):
    """Remember the Trainer the fit ran with."""

    trainer: L.Trainer | None = None

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        Seen.trainer = trainer


def test_every_trainer_key_reaches_lightning(tmp_path, monkeypatch):
    from midiml import training

    params = tiny_params(
        trainer={
            "gradient_clip_val": 0.25,
            "limit_val_batches": 2,
            "accumulate_grad_batches": 3,
            "max_epochs": 1,
        },
        callbacks={"early_stopping": {"patience": 7}},
    )
    original = training.fit_lightning

    def with_probe(*args, **kwargs):
        kwargs["extra_callbacks"] = [Seen()]
        return original(*args, **kwargs)

    monkeypatch.setattr("midiml.generate.train.fit_lightning", with_probe)
    train_generator(
        "ffnn",
        params.model.generators.ffnn,
        params,
        scale_data(),
        tmp_path / "m",
        progress_bar=False,
    )
    trainer = Seen.trainer
    assert trainer is not None
    assert trainer.gradient_clip_val == 0.25
    assert trainer.limit_val_batches == 2
    assert trainer.accumulate_grad_batches == 3
    assert trainer.early_stopping_callback.patience == 7


@pytest.mark.slow
def test_ddp_on_two_cpu_processes_trains_a_generator(tmp_path):
    """``+trainer.strategy=ddp trainer.devices=2``: two processes (gloo), rank 0 saves."""
    script = tmp_path / "ddp.py"
    script.write_text(
        textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(REPO)!r})
        from tests.conftest import tiny_params
        from tests.test_generators import scale_data
        from midiml.generate.train import train_generator
        params = tiny_params(["+trainer.strategy=ddp", "trainer.devices=2"])
        out = {str(tmp_path / "out")!r}
        info = train_generator("ffnn", params.model.generators.ffnn, params, scale_data(), out,
                               progress_bar=False)
        print("WORLD", info["world_size"])
    """)
    )
    res = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert res.returncode == 0, res.stderr[-2000:]
    assert "WORLD 2" in res.stdout
    assert (tmp_path / "out" / "best.ckpt").exists()


def test_cpu_threads_never_exceed_the_usable_cores(monkeypatch):
    """More torch threads than cores oversubscribe them (an epoch ran ~10x slower)."""
    import os

    from omegaconf import OmegaConf

    from midiml import training

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    assert training.cpu_threads(OmegaConf.create({"cpu_threads": 2})) == 2
    assert training.cpu_threads(OmegaConf.create({"cpu_threads": 16})) == 2
    assert training.cpu_threads(OmegaConf.create({"cpu_threads": None})) == 1
    assert training.cpu_threads(OmegaConf.create({})) == 1
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0}, raising=False)
    assert training.cpu_threads(OmegaConf.create({"cpu_threads": 2})) == 1


def test_a_models_own_precision_auto_is_bf16_only_where_the_cpu_has_it(monkeypatch):
    """``auto``: bf16-mixed on a CPU that multiplies bf16 in hardware (1.6x the token model's
    tokens/s here), float32 where torch would emulate it (slower), the trainer's on a GPU."""
    from omegaconf import OmegaConf

    from midiml import training

    cpu = OmegaConf.create({"trainer": {"accelerator": "cpu", "precision": "32-true"}})
    gpu = OmegaConf.create({"trainer": {"accelerator": "gpu", "precision": "bf16-mixed"}})
    monkeypatch.setattr(training, "native_bf16_cpu", lambda: True)
    assert training.model_precision("auto", cpu) == "bf16-mixed"
    assert training.model_precision("auto", gpu) is None
    assert training.model_precision(None, cpu) is None
    assert training.model_precision("16-mixed", cpu) == "16-mixed"
    monkeypatch.setattr(training, "native_bf16_cpu", lambda: False)
    assert training.model_precision("auto", cpu) is None
