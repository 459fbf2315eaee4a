"""Read the pipeline parameters that DVC composes from ``conf/`` into ``params.yaml``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

PARAMS_FILE = Path(os.environ.get("MIDIML_PARAMS", "params.yaml"))


def load_params(path: str | os.PathLike[str] | None = None) -> DictConfig:
    """Load ``params.yaml`` (the file DVC tracks) as an OmegaConf config."""
    p = Path(path) if path else PARAMS_FILE
    if not p.exists():
        raise FileNotFoundError(f"{p}: no params file; run from the repository root")
    return OmegaConf.load(p)  # type: ignore[return-value]


def compose_defaults(overrides: list[str] | None = None, conf_dir: str = "conf") -> dict[str, Any]:
    """Compose ``conf/config.yaml`` with Hydra, as ``dvc exp run`` does."""
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(Path(conf_dir).resolve()), version_base=None):
        cfg = compose(config_name="config", overrides=overrides or [])
    return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]


def flatten(cfg: Any, prefix: str = "", sep: str = ".") -> dict[str, Any]:
    """Flatten a nested config into ``a.b.c`` keys (MLflow params)."""
    if isinstance(cfg, DictConfig):
        cfg = OmegaConf.to_container(cfg, resolve=True)
    out: dict[str, Any] = {}
    if isinstance(cfg, dict):
        for k, v in cfg.items():
            out.update(flatten(v, f"{prefix}{k}{sep}", sep))
    elif isinstance(cfg, list):
        out[prefix.rstrip(sep)] = str(cfg)
    else:
        out[prefix.rstrip(sep)] = cfg
    return out
