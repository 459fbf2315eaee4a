"""Benchmark: wall time of `midiml continue` for 20 s of music, start-up included, per model.

Runs the real command in a fresh process (what a user waits for) on a 16-note C-major melody
written here with mido, ``repeats`` times per trained model, and records the median under
``continue_speed`` in reports/metrics/benchmarks.json. Target: <= 1.5 s for the default model.
"""

from __future__ import annotations

import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import mido

from midiml.generate.continuation import default_choice
from midiml.report.benchmarks import record

SECONDS = 20.0
TARGET_S = 1.5


def write_prompt(path: Path) -> Path:
    mid = mido.MidiFile(ticks_per_beat=480)
    track = mido.MidiTrack([mido.MetaMessage("set_tempo", tempo=500_000, time=0)])
    for p in [60, 62, 64, 65, 67, 65, 64, 62, 64, 65, 67, 69, 67, 65, 64, 60]:
        track.append(mido.Message("note_on", note=p, velocity=80, time=0))
        track.append(mido.Message("note_off", note=p, time=480))
    mid.tracks.append(track)
    mid.save(path)
    return path


def trained_models(models_dir: Path) -> list[str]:
    found = models_dir.glob("*/meta.json")
    return sorted({p.parent.name for p in found} - {"ffnn_ablation"})


def time_model(model: str, prompt: Path, models_dir: Path, repeats: int) -> list[float]:
    walls = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(repeats):
            cmd = [sys.executable, "-m", "midiml.cli", "continue", str(prompt)]
            cmd += ["--model", model, "--seconds", str(SECONDS), "--seed", str(i)]
            cmd += ["--models", str(models_dir), "-o", str(Path(tmp) / "out.mid")]
            t0 = time.perf_counter()
            subprocess.run(cmd, check=True, capture_output=True)
            walls.append(time.perf_counter() - t0)
    return walls


def run(models_dir: str | Path = "models/generators", repeats: int = 5) -> dict[str, object]:
    models_dir = Path(models_dir)
    with tempfile.TemporaryDirectory() as tmp:
        prompt = write_prompt(Path(tmp) / "prompt.mid")
        per_model = {}
        for model in trained_models(models_dir):
            walls = time_model(model, prompt, models_dir, repeats)
            per_model[model] = {
                "median_s": round(statistics.median(walls), 3),
                "max_s": round(max(walls), 3),
            }
    return {
        "seconds_of_music": SECONDS,
        "repeats": repeats,
        "default_model": default_choice(models_dir)[0],
        "target_s": TARGET_S,
        "machine": f"{platform.machine()}, {platform.python_version()}",
        "models": per_model,
    }


if __name__ == "__main__":
    res = record("continue_speed", run(*sys.argv[1:2]))["continue_speed"]
    for name, r in res["models"].items():
        print(f"{name}: median {r['median_s']} s, max {r['max_s']} s for {SECONDS:.0f} s of music")
