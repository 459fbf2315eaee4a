"""The roll VAE: rolls <-> notes, the loss that does not reward blur, thresholds, use, CLI."""

from __future__ import annotations

import mido
import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from midiml.cli import app
from midiml.evaluate import rolls as rm
from midiml.generate.vae import RollVAE, kl_term, repetition_roll, roll_loss
from midiml.generate.vae_data import RollWindowDataModule, valid_starts
from midiml.generate.vae_study import run_study
from midiml.generate.vae_use import (
    Decoding,
    choose_thresholds,
    continue_with_vae,
    pick_within_band,
    save_model,
)
from midiml.represent.onset_frame import Grid, onset_frame_rolls, rolls_to_notes, transpose_rolls
from midiml.represent.tonality import key_consistency
from tests.conftest import tiny_params, write_midi

GRID = Grid(step=0.125, pitch_low=21, pitch_high=108)
runner = CliRunner()


def _notes(rows: list[tuple[int, float, float]]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "pitch": [r[0] for r in rows],
            "velocity": 80,
            "onset_s": [r[1] for r in rows],
            "duration_s": [r[2] for r in rows],
            "is_drum": False,
        }
    )


def test_roll_round_trip_keeps_repeated_notes_apart():
    # two back-to-back notes on one pitch: the frame alone would merge them, the onset keeps two
    rows = [(60, 0.0, 0.5), (60, 0.5, 0.25), (64, 0.25, 1.0), (21, 1.0, 0.125), (108, 1.5, 0.5)]
    onset, frame = onset_frame_rolls(_notes(rows), GRID)
    assert onset.sum() == len(rows)
    back = rolls_to_notes(onset.toarray(), frame.toarray(), GRID)
    got = sorted(zip(back["pitch"], back["onset_s"], back["duration_s"], strict=True))
    assert got == sorted(rows)
    # the study's frame-only decoding cannot: the repeated C becomes one long note
    merged = rolls_to_notes(onset.toarray(), frame.toarray(), GRID, onsets_from_frames=True)
    assert len(merged) == len(rows) - 1
    got = set(zip(merged["pitch"], merged["onset_s"], merged["duration_s"], strict=True))
    assert (60, 0.0, 0.75) in got


def test_out_of_range_pitches_are_dropped_and_transposition_shifts_rows():
    onset, frame = onset_frame_rolls(_notes([(10, 0.0, 0.5), (60, 0.0, 0.5)]), GRID, 8)
    assert onset.shape == (88, 8) and onset.sum() == 1
    x = np.stack([onset.toarray(), frame.toarray()])
    up = transpose_rolls(x, 3)
    assert up[0, 60 - 21 + 3, 0] == 1 and up.sum() == x.sum()
    assert transpose_rolls(x, -50).sum() == 0  # pushed below the range: gone, not wrapped


def test_windows_need_notes_in_both_halves():
    notes = _notes([(60, i * 0.125, 0.125) for i in range(12)])  # steps 0..11 play, then silence
    onset, _ = onset_frame_rolls(notes, GRID, 64)
    # halves of 8 steps: start 2 still hears steps 10, 11 in its continuation; start 4 none
    assert list(valid_starts(onset, 16, 2, 2)) == [0, 2]


def _toy_batch(seed: int = 0) -> torch.Tensor:
    """(B, 2, P, T) sparse target: short notes, ~2 % of cells sounding."""
    rng = np.random.default_rng(seed)
    y = np.zeros((4, 2, 24, 64), np.float32)
    for b in range(4):
        for _ in range(10):
            p, t = rng.integers(24), rng.integers(60)
            y[b, 0, p, t] = 1
            y[b, 1, p, t : t + 3] = 1
    return torch.from_numpy(y)


def _logit(p: torch.Tensor) -> torch.Tensor:
    p = p.clamp(1e-4, 1 - 1e-4)
    return torch.log(p / (1 - p))


def test_plain_loss_prefers_blur_to_a_near_miss():
    y = _toy_batch()
    blur = _logit(torch.full_like(y, float(y[:, 1].mean())))  # the base rate everywhere
    near_miss = _logit(torch.clamp(0.9 * torch.roll(y, 2, dims=3), 1e-3, 0.99))  # 2 steps late
    assert roll_loss(blur, y, "plain") < roll_loss(near_miss, y, "plain")


def test_best_constant_guess_rises_under_the_balanced_loss():
    """A model that has not learned *when* falls back to a constant; plain BCE makes that
    constant the ~2 % base rate (no threshold turns it into rhythm), ours lifts it several-fold."""
    y = _toy_batch()
    grid = torch.linspace(0.005, 0.6, 120)

    def best(kind: str, channel: int) -> float:
        losses = []
        for p in grid:
            logits = torch.full_like(y, float(_logit(p)))
            if kind == "plain":
                losses.append(float(roll_loss(logits, y, kind)))
            else:  # one head at a time: the other is held at its own target (zero loss)
                logits[:, 1 - channel] = _logit(y[:, 1 - channel])
                losses.append(float(roll_loss(logits, y, kind)))
        return float(grid[int(np.argmin(losses))])

    plain = best("plain", 1)
    assert plain == pytest.approx(float(y[:, 1].mean()), abs=0.01)
    assert best("balanced", 1) > 4 * plain
    assert best("balanced", 0) > 10 * float(y[:, 0].mean())


def test_balanced_gradient_pushes_missed_onsets_up_harder():
    y = _toy_batch()
    logits = torch.full_like(y, -4.0, requires_grad=True)  # predicts (almost) nothing
    roll_loss(logits, y, "balanced", onset_pos_weight=30.0).backward()
    g = logits.grad
    onset_pos = g[:, 0][y[:, 0] > 0].abs().mean()
    onset_neg = g[:, 0][y[:, 0] == 0].abs().mean()
    assert onset_pos > 100 * onset_neg
    logits.grad = None
    roll_loss(logits, y, "plain").backward()
    assert float(logits.grad[:, 0].abs().sum()) == 0.0  # the study's loss ignores onsets


def test_free_bits_floor_the_kl():
    mu, logvar = torch.zeros(8, 4), torch.zeros(8, 4)
    assert float(kl_term(mu, logvar)) == 0.0
    assert float(kl_term(mu, logvar, free_bits=0.25)) == pytest.approx(1.0)


def test_thresholds_are_chosen_on_validation_and_decode_accordingly():
    rng = np.random.default_rng(0)
    y = _toy_batch().numpy()
    probs = np.clip(0.5 * y + rng.uniform(0, 0.3, y.shape), 0, 1)  # true cells 0.5-0.8
    dec = choose_thresholds(probs, y, frame_only=False)
    assert 0.3 <= dec.onset_threshold <= 0.5 and 0.3 <= dec.frame_threshold <= 0.5
    notes = rolls_to_notes(probs[0, 0], probs[0, 1], GRID, dec.onset_threshold, dec.frame_threshold)
    assert len(notes) == int(y[0, 0].sum())
    assert len(rolls_to_notes(probs[0, 0], probs[0, 1], GRID, 0.05, 0.05)) > 3 * len(notes)
    assert choose_thresholds(probs, y, frame_only=True).onsets_from_frames


def test_roll_metrics_catch_held_notes():
    real = _notes([(60 + i % 5, i * 0.5, 0.25) for i in range(32)])
    held = _notes([(60, 0.0, 16.0), (64, 0.0, 16.0)])
    on_r, fr_r = onset_frame_rolls(real, GRID, 128)
    on_h, fr_h = onset_frame_rolls(held, GRID, 128)
    assert rm.density_ratio(held, real) == pytest.approx(2 / 32)
    assert rm.length_ratio(held, real) == pytest.approx(64.0)
    assert rm.sustained_share(fr_h.toarray() > 0, 16) == 1.0
    assert rm.sustained_share(fr_r.toarray() > 0, 16) == 0.0
    assert rm.onset_f1(on_r.toarray() > 0, on_r.toarray() > 0) == 1.0
    assert rm.onset_f1(on_h.toarray() > 0, on_r.toarray() > 0) < 0.1
    c_major = _notes([(p, i * 0.5, 0.5) for i, p in enumerate([60, 62, 64, 65, 67, 69, 71, 72])])
    assert key_consistency(c_major["pitch"], c_major["pitch"], c_major["duration_s"]) == 1.0
    assert rm.register_gap(c_major.assign(pitch=c_major["pitch"] + 12), c_major) == 12.0


def _periodic_context(period: int, steps: int = 64, n_pitches: int = 12) -> torch.Tensor:
    """(1, 2, P, T) onset/frame roll of a riff that repeats every ``period`` steps."""
    x = torch.zeros(1, 2, n_pitches, steps)
    riff = [(0, 0), (4, 3), (7, 5), (4, 9)]  # (pitch row, step within the period)
    for start in range(0, steps, period):
        for row, at in riff:
            if start + at < steps:
                x[0, 0, row, start + at] = 1.0
                x[0, 1, row, start + at : min(steps, start + at + 2)] = 1.0
    return x


def test_repetition_roll_continues_a_riff_at_its_period():
    ctx = _periodic_context(period=12)
    rep = repetition_roll(ctx, min_lag=4)
    # the continuation of a strictly periodic context is the context one period later
    longer = _periodic_context(period=12, steps=128)
    assert torch.equal(rep, longer[..., 64:])
    # other periods give other continuations; an empty context gives an empty roll
    assert not torch.equal(repetition_roll(_periodic_context(period=16), min_lag=4), rep)
    assert float(repetition_roll(torch.zeros(2, 2, 12, 64)).abs().sum()) == 0.0


def test_the_repetition_prior_lets_the_decoder_copy_a_riff():
    """With the prior, an untrained decoder already ranks the riff's next onsets above the rest
    (the prior starts as an identity filter); without it, it cannot know them."""
    torch.manual_seed(0)
    ctx = _periodic_context(period=8)
    truth = repetition_roll(ctx, min_lag=4)[0, 0] > 0
    for prior, better in ((True, True), (False, False)):
        torch.manual_seed(0)
        model = RollVAE(n_pitches=12, window=128, hidden=8, latent=4, n_down=2, repeat_prior=prior)
        probs = model.sample(ctx, 1, torch.Generator().manual_seed(0))[0, 0]
        gap = float(probs[truth].mean() - probs[~truth].mean())
        assert (gap > 0.1) is better
    with pytest.raises(ValueError, match="context"):
        model = RollVAE(n_pitches=12, window=128, hidden=8, latent=4, n_down=2)
        model.decode(model.encode_context(ctx), torch.zeros(1, 4))


@pytest.fixture
def tiny_vae_dir(tmp_path):
    """An untrained tiny VAE saved the way the stage saves it (thresholds low: it plays)."""
    torch.manual_seed(0)
    model = RollVAE(n_pitches=GRID.n_pitches, window=64, hidden=8, latent=4, n_down=2)
    save_model(model, tmp_path / "vae", GRID, Decoding(0.5, 0.5))
    return tmp_path / "vae"


def test_continue_with_vae_gives_distinct_variations_after_the_prompt(tiny_vae_dir):
    prompt = _notes([(60 + i % 7, i * 0.25, 0.25) for i in range(16)])
    outs = continue_with_vae(prompt, seconds=6.0, variations=2, seed=1, model_dir=tiny_vae_dir)
    assert len(outs) == 2
    for out in outs:
        assert len(out) > 0
        assert out["onset_s"].min() >= 4.0 and out["onset_s"].max() < 10.0
        assert {"pitch", "velocity", "onset_s", "duration_s", "is_drum"} <= set(out.columns)
    assert not outs[0][["pitch", "onset_s"]].equals(outs[1][["pitch", "onset_s"]])


def test_interpolate_cli_writes_a_playable_file(tmp_path, tiny_vae_dir):
    a = write_midi(tmp_path / "a.mid", [(60 + i % 5, i * 0.5, 0.5) for i in range(16)])
    b = write_midi(tmp_path / "b.mid", [(72 - i % 4, i * 0.25, 0.25) for i in range(32)])
    out = tmp_path / "morph.mid"
    res = runner.invoke(
        app, ["interpolate", str(a), str(b), "-o", str(out), "--model-dir", str(tiny_vae_dir)]
    )
    assert res.exit_code == 0, res.output
    assert len(mido.MidiFile(out).tracks[0]) > 3


@pytest.mark.parametrize(
    "case, message",
    [("missing", "no such file"), ("garbage", "garbage.mid"), ("no_model", "no trained VAE")],
)
def test_interpolate_cli_errors_are_one_line(tmp_path, tiny_vae_dir, case, message):
    a = write_midi(tmp_path / "a.mid")
    b = tmp_path / "b.mid"
    model_dir = tiny_vae_dir
    if case == "garbage":
        b = tmp_path / "garbage.mid"
        b.write_bytes(b"not a midi file")
    elif case == "no_model":
        b = write_midi(tmp_path / "b.mid")
        model_dir = tmp_path / "nothing"
    res = runner.invoke(
        app,
        [
            "interpolate",
            str(a),
            str(b),
            "-o",
            str(tmp_path / "o.mid"),
            "--model-dir",
            str(model_dir),
        ],
    )
    assert res.exit_code == 2
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0]
    assert "Traceback" not in res.output


def test_a_smeared_onset_decodes_to_one_note():
    onset = np.zeros((GRID.n_pitches, 16), np.float32)
    frame = np.zeros_like(onset)
    onset[39, 3:7] = [0.5, 0.9, 0.6, 0.5]  # one uncertain onset spread over four steps ...
    onset[40, 4] = 0.7  # ... and a semitone
    frame[39, 3:10] = 0.8
    notes = rolls_to_notes(onset, frame, GRID, 0.4, 0.5)
    assert list(zip(notes["pitch"], notes["onset_s"], strict=True)) == [(60, 4 * GRID.step)]
    assert notes["duration_s"].iloc[0] == pytest.approx(6 * GRID.step)
    assert len(rolls_to_notes(onset, frame, GRID, 0.4, 0.5, peak_pick=False)) == 5


def test_thresholds_keep_note_count_and_length_near_the_real_ones():
    """Thresholds land above a haze of false probabilities; and the rule takes the best F1
    only among candidates whose note count / length is within the band of the real one."""
    y = _toy_batch().numpy()
    rng = np.random.default_rng(1)
    haze = rng.uniform(0.2, 0.3, y.shape) * (rng.random(y.shape) < 0.2)
    probs = np.maximum(0.35 * y, haze)
    dec = choose_thresholds(probs, y, frame_only=False)
    assert dec.onset_threshold >= 0.3 and dec.frame_threshold >= 0.3
    scores = np.array([0.30, 0.25, 0.20])  # F1 falls as the threshold rises ...
    misfit = np.abs(np.log([3.0, 1.2, 0.9]))  # ... but the first sprays 3x the notes
    assert pick_within_band(scores, misfit, 1.5) == 1
    assert pick_within_band(scores, np.log([3.0, 2.5, 2.0]), 1.5) == 2  # none fits: the closest


def test_datamodule_cuts_song_level_windows(tmp_path):
    rows = []
    for song in ("a", "b", "c"):
        for i in range(64):
            rows.append((song, 48 + i % 12, i * 0.25, 0.25))
    notes = pd.DataFrame(rows, columns=["file_id", "pitch", "onset_s", "duration_s"]).assign(
        velocity=80, is_drum=False
    )
    notes.to_parquet(tmp_path / "notes.parquet")
    splits = pd.DataFrame({"file_id": ["a", "b", "c"], "split": ["train", "val", "test"]})
    splits.to_parquet(tmp_path / "splits.parquet")
    dm = RollWindowDataModule(
        str(tmp_path / "notes.parquet"),
        str(tmp_path / "splits.parquet"),
        step=0.125,
        window=64,
        hop=8,
        min_notes=4,
        batch_size=4,
        transpose=3,
    )
    dm.setup()
    assert dm.rolls["train"].file_ids == ["a"] and dm.rolls["test"].file_ids == ["c"]
    batch = next(iter(dm.train_dataloader()))
    assert batch.shape[1:] == (2, 88, 64)
    assert float(batch[:, 0].sum()) == pytest.approx(32 * len(batch))  # 32 onsets per window
    val = next(iter(dm.val_dataloader()))
    assert val.shape[1:] == (2, 88, 64)


def test_the_study_gives_the_same_table_whatever_the_random_state_before_it(tmp_path):
    """Every variant's weights are drawn after seeding: a run's numbers must not depend on
    what the process did with torch's random state before the stage began."""
    rows = []
    for song in "abcdef":
        base = 48 + "abcdef".index(song)
        for i in range(96):
            rows.append((song, base + (0, 4, 7, 12)[i % 4], i * 0.25, 0.25))
    notes = pd.DataFrame(rows, columns=["file_id", "pitch", "onset_s", "duration_s"])
    notes.assign(velocity=80, is_drum=False).to_parquet(tmp_path / "notes.parquet")
    splits = pd.DataFrame({"file_id": list("abcdef"), "split": ["train"] * 4 + ["val", "test"]})
    splits.to_parquet(tmp_path / "splits.parquet")
    params = tiny_params(
        model={
            "vae": {
                "module": {"window": 64, "hidden": 8, "latent": 4, "n_down": 2},
                "datamodule": {
                    "notes_path": str(tmp_path / "notes.parquet"),
                    "splits_path": str(tmp_path / "splits.parquet"),
                    "step": 0.125,
                    "window": 64,
                    "hop": 8,
                    "min_notes": 4,
                    "windows_per_epoch": 16,
                    "batch_size": 8,
                },
            },
            "vae_study": {"max_epochs": 1, "eval_windows": 4},
        }
    )
    tables = []
    for noise in (1, 2):
        torch.manual_seed(noise)  # some earlier use of the global generator
        result = run_study(params, tmp_path / f"out{noise}")
        tables.append(result["table"])
    assert set(tables[0]["model"]) >= {"study", "ours_no_repeat", "ours", "repeat", "markov"}
    pd.testing.assert_frame_equal(tables[0], tables[1])


def test_the_page_says_where_the_vaes_trained(monkeypatch):
    """The page's training line names the accelerator and, on a CPU, torch's threads as the
    fit used them (it once said "1 thread" whatever ran)."""
    import os

    from omegaconf import OmegaConf

    from tests.conftest import load_script

    stage = load_script("stages/train_vae.py")
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    cpu = OmegaConf.create({"trainer": {"accelerator": "cpu"}, "cpu_threads": 2})
    assert stage.trained_on(cpu) == "CPU, 2 threads"
    assert stage.trained_on(OmegaConf.merge(cpu, {"cpu_threads": 1})) == "CPU, 1 thread"
    gpu = OmegaConf.create({"trainer": {"accelerator": "gpu"}, "cpu_threads": 2})
    assert stage.trained_on(gpu) == "GPU"


def test_a_vae_that_would_decode_nothing_still_plays(tmp_path):
    """Thresholds no onset reaches (an unsure model): each block is decoded again at its own
    strongest onsets, near the prompt's density, inside the asked-for seconds."""
    torch.manual_seed(0)
    model = RollVAE(n_pitches=GRID.n_pitches, window=64, hidden=8, latent=4, n_down=2)
    save_model(model, tmp_path / "vae", GRID, Decoding(1.0, 1.0))
    prompt = _notes([(60 + i % 5, i * 0.5, 0.5) for i in range(8)])  # 2 notes per second
    for seed in range(3):
        (out,) = continue_with_vae(prompt, seconds=3.0, seed=seed, model_dir=tmp_path / "vae")
        assert 1 <= len(out) <= 12
        assert out["onset_s"].min() >= 4.0 and out["onset_s"].max() < 7.0
