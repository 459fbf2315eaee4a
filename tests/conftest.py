"""Shared fixtures: tiny MIDI files written with mido, a loopback HTTP server, the mirror."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import mido
import pytest

REPO = Path(__file__).resolve().parents[1]
MIRROR = REPO.parent / "shared" / "datasets"


def write_midi(
    path: Path,
    notes: list[tuple[int, float, float]] | None = None,
    tempo: int = 500_000,
    tpq: int = 480,
    velocity: int = 80,
) -> Path:
    """Write a one-track MIDI file; ``notes`` are (pitch, start_beat, duration_beats)."""
    notes = [(60, 0, 1), (62, 1, 1), (64, 2, 1), (65, 3, 1)] if notes is None else notes
    mid = mido.MidiFile(ticks_per_beat=tpq)
    track = mido.MidiTrack()
    mid.tracks.append(track)
    track.append(mido.MetaMessage("set_tempo", tempo=tempo, time=0))
    events = []
    for pitch, start, dur in notes:
        events.append((int(start * tpq), 1, mido.Message("note_on", note=pitch, velocity=velocity)))
        events.append((int((start + dur) * tpq), 0, mido.Message("note_off", note=pitch)))
    now = 0
    for tick, _, msg in sorted(events, key=lambda e: (e[0], e[1])):
        track.append(msg.copy(time=tick - now))
        now = tick
    track.append(mido.MetaMessage("end_of_track", time=0))
    path.parent.mkdir(parents=True, exist_ok=True)
    mid.save(path)
    return path


@pytest.fixture
def midi_writer():
    return write_midi


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # keep pytest output clean
        pass

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        if self.path.startswith("/truncated/"):
            body = b"PK\x03\x04" + b"\x00" * 1000
            self.send_response(200)
            self.send_header("Content-Length", str(len(body) * 100))
            self.end_headers()
            self.wfile.write(body)
            self.wfile.flush()
            self.close_connection = True
            return
        super().do_GET()


@pytest.fixture
def http_dir(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """Serve a temporary folder over real HTTP on 127.0.0.1; yield (base URL, folder)."""
    root = tmp_path / "served"
    root.mkdir()

    def handler(*a, **kw):
        return _QuietHandler(*a, directory=str(root), **kw)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", root
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def mirror() -> Path:
    if not (MIRROR / "SHA256SUMS").exists():
        pytest.skip("offline dataset mirror ../shared/datasets is absent")
    return MIRROR


def load_script(relative: str) -> object:
    """A script of the repository that is not in a package (``benchmarks/*.py``, ``stages/*.py``)
    loaded as a module, so a test can call its functions."""
    import importlib.util
    import sys

    path = REPO / relative
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # before running it: dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def tiny_params(overrides: list[str] | None = None, **nodes) -> object:
    """The project's real composed config, shrunk for tests: 1-epoch CPU training, small
    generators, tracking off. ``overrides`` are Hydra overrides; ``nodes`` merge on top."""
    from omegaconf import OmegaConf

    from midiml.config import compose_defaults

    cfg = OmegaConf.create(compose_defaults(overrides, conf_dir=str(REPO / "conf")))
    small = {
        "seed": 0,
        "data": {"max_epochs": 1},
        "tracking": {"enabled": False},
        "trainer": {"max_epochs": 1, "enable_progress_bar": False},
        "loader": {"batch_size": 64},
        "model": {
            "windows": {"n_in": 8},
            "generators": {
                "forest": {
                    "module": {
                        "context": 4,
                        "n_estimators": 5,
                        "max_depth": 6,
                        "min_samples_leaf": 1,
                        "max_train_windows": 500,
                    }
                },
                "ffnn": {
                    "module": {"n_in": 8, "embed": 8, "hidden": 32, "dropout": 0.0, "lr": 0.01},
                    "datamodule": {"n_in": 8, "windows_per_epoch": 300},
                    "max_epochs": 1,
                },
                "lstm_tonedeaf": {
                    "module": {
                        "n_in": 8,
                        "embed": 8,
                        "hidden": 16,
                        "layers": 1,
                        "dropout": 0.0,
                        "lr": 0.01,
                    },
                    "datamodule": {"n_in": 8, "windows_per_epoch": 300},
                    "max_epochs": 1,
                },
                "note_lstm": {
                    "module": {
                        "n_in": 8,
                        "embed": 8,
                        "hidden": 16,
                        "layers": 3,
                        "dense": 16,
                        "dropout": 0.1,
                        "lr": 0.01,
                    },
                    "datamodule": {"n_in": 8, "windows_per_epoch": 300},
                    "max_epochs": 1,
                },
            },
        },
    }
    return OmegaConf.merge(cfg, small, nodes)


def pytest_collection_modifyitems(config, items) -> None:
    """Tests that use the mirror carry the ``mirror`` marker (``pytest -m "not mirror"``)."""
    for item in items:
        if "mirror" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.mirror)


def classifier_models(**grids: dict) -> dict:
    """``classifier.models`` for tests: each named model's real estimator config (conf/) with
    a small grid, e.g. ``classifier_models(logreg={"C": [1.0]})``."""
    from omegaconf import OmegaConf

    from midiml.config import compose_defaults

    real = OmegaConf.create(compose_defaults(conf_dir=str(REPO / "conf")))["classifier"]["models"]
    return {
        name: {
            "estimator": OmegaConf.to_container(real[name].estimator, resolve=True),
            "grid": grid,
        }
        for name, grid in grids.items()
    }


def run_stage(workdir: Path, script: str, *args: str) -> str:
    """``stages/<script>`` run in ``workdir`` as DVC runs it, on this checkout's code; its
    stdout (the test fails with the stage's stderr when it exits non-zero)."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{REPO / 'src'}"}
    res = subprocess.run(
        [sys.executable, str(REPO / "stages" / script), *args],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    return res.stdout
