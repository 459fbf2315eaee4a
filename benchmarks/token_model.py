"""Benchmark: the token Transformer's training throughput and its continue speed.

``python benchmarks/token_model.py --trainer cpu`` (or ``gpu``) trains ``model.transformer``
with the committed defaults and ``trainer=<TRAINER>`` on data/processed/tokens.npz (run the
``tokens`` stage first) for ``--epochs`` epochs into a scratch folder and records tokens/s
(wall, and per CPU-second of the process, which stays comparable on a shared machine).
With ``--model-dir`` it also times ``midiml continue -m transformer`` on a 4-track prompt
with drums (20 s of music, a fresh process each time: start-up included). Results go to
``token_model_<TRAINER>`` in reports/metrics/benchmarks.json. Nothing goes to MLflow.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import mido
from omegaconf import OmegaConf

from midiml.config import compose_defaults
from midiml.report.benchmarks import record

SECONDS = 20.0


def band_prompt(path: Path, bars: int = 8) -> Path:
    """Piano chords, bass, lead and drums at 100 qpm, ``bars`` bars of 4/4."""
    mid = mido.MidiFile(type=1, ticks_per_beat=480)
    mid.tracks.append(mido.MidiTrack([mido.MetaMessage("set_tempo", tempo=600_000, time=0)]))
    chords = [(57, 60, 64), (53, 57, 60), (48, 52, 55), (55, 59, 62)]
    parts = {0: 0, 1: 33, 2: 73, 9: 0}
    for channel, program in parts.items():
        events = []
        for bar in range(bars):
            chord = chords[bar % 4]
            for beat in range(4):
                t = (bar * 4 + beat) * 480
                if channel == 0:
                    events += [(t, p, 70, 440) for p in chord]
                elif channel == 1:
                    events.append((t, chord[0] - 24 + (7 if beat % 2 else 0), 90, 400))
                elif channel == 2:
                    events.append((t + 240, chord[(bar + beat) % 3] + 12, 80, 200))
                else:
                    events += [(t, 36 if beat % 2 == 0 else 38, 100, 100), (t + 240, 42, 60, 100)]
        msgs = []
        for t, p, v, d in events:
            msgs += [(t, 1, p, v), (t + d, 0, p, 0)]
        track = mido.MidiTrack()
        if channel != 9:
            track.append(mido.Message("program_change", channel=channel, program=program))
        now = 0
        for t, on, p, v in sorted(msgs, key=lambda m: (m[0], m[1])):
            kind = "note_on" if on else "note_off"
            track.append(mido.Message(kind, channel=channel, note=p, velocity=v, time=t - now))
            now = t
        mid.tracks.append(track)
    mid.save(path)
    return path


def train_throughput(trainer: str, epochs: int, tokens: str) -> dict:
    from midiml.generate.transformer import train_transformer

    params = OmegaConf.create(compose_defaults([f"trainer={trainer}"]))
    params.tracking.enabled = False
    cfg = params.model.transformer
    cfg.max_epochs = epochs
    with tempfile.TemporaryDirectory() as scratch:
        info = train_transformer(
            cfg, params, tokens, Path(tokens).with_name("tokenizer.json"), Path(scratch)
        )
    keys = ("parameters", "epochs", "train_tokens", "train_seconds", "train_cpu_seconds")
    out = {k: info[k] for k in keys}
    out["tokens_per_second"] = round(info["train_tokens_per_second"], 1)
    out["tokens_per_cpu_second"] = round(info["train_tokens_per_cpu_second"], 1)
    out["best_val_bits_per_token"] = info["best_val_bits_per_token"]
    return out


def continue_speed(model_dir: Path, repeats: int) -> dict:
    import resource

    walls, cpus = [], []
    with tempfile.TemporaryDirectory() as tmp:
        prompt = band_prompt(Path(tmp) / "band.mid")
        for i in range(repeats):
            cmd = [sys.executable, "-m", "midiml.cli", "continue", str(prompt), "-m", "transformer"]
            cmd += ["--seconds", str(SECONDS), "--seed", str(i), "-o", str(Path(tmp) / "o.mid")]
            cmd += ["--models", str(model_dir.parent)]
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            t0 = time.perf_counter()
            subprocess.run(cmd, check=True, capture_output=True)
            walls.append(time.perf_counter() - t0)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpus.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
    # CPU seconds (user + system) of the command: what the wall time is on an idle machine
    return {"seconds_of_music": SECONDS, "median_s": round(statistics.median(walls), 3),
            "max_s": round(max(walls), 3), "median_cpu_s": round(statistics.median(cpus), 3),
            "repeats": repeats}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trainer", default="cpu", help="a conf/trainer option: cpu or gpu")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--tokens", default="data/processed/tokens.npz")
    ap.add_argument("--model-dir", default=None, help="a trained models/generators/transformer")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--skip-train", action="store_true")
    args = ap.parse_args()
    res: dict = {}
    if not args.skip_train:
        res["train"] = train_throughput(args.trainer, args.epochs, args.tokens)
    if args.model_dir:
        res["continue_4_tracks"] = continue_speed(Path(args.model_dir), args.repeats)
    print(record(f"token_model_{args.trainer}", res)[f"token_model_{args.trainer}"])


if __name__ == "__main__":
    main()
