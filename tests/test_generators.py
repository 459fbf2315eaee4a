"""Generators: fit, save/load round trip, distributions, sampling with temperature/top-k/seed."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from midiml.generate.base import load_generator
from midiml.generate.markov import MarkovGenerator
from midiml.generate.sampling import continue_events, continue_seconds, sample_pitches
from midiml.generate.train import train_generator
from midiml.represent.windows import build_event_data
from tests.conftest import tiny_params

SCALE = [60, 62, 64, 65, 67, 69, 71, 72]


def scale_data(n_songs: int = 6, length: int = 80):
    """Songs that walk up and down a C-major scale: easy to predict, never repeating."""
    notes, splits = scale_tables(n_songs, length)
    return build_event_data(notes, splits, n_in=8, n_out=1)


def scale_tables(n_songs: int = 6, length: int = 80) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The notes and splits tables of :func:`scale_data`'s songs (as ingest/split write them)."""
    walk = SCALE + SCALE[-2:0:-1]
    rows = []
    for s in range(n_songs):
        pitches = [walk[i % len(walk)] for i in range(length)]
        rows.append(
            pd.DataFrame(
                {
                    "file_id": f"s{s}",
                    "track": 0,
                    "program": 0,
                    "is_drum": False,
                    "pitch": pitches,
                    "velocity": 80,
                    "onset_s": np.arange(length) * 0.25,
                    "duration_s": 0.2,
                    "onset_beats": np.arange(length) * 0.5,
                    "duration_beats": 0.4,
                }
            )
        )
    splits = pd.DataFrame(
        {
            "file_id": [f"s{s}" for s in range(n_songs)],
            "genre": "g",
            "split": ["train"] * (n_songs - 2) + ["val", "test"],
        }
    )
    return pd.concat(rows, ignore_index=True), splits


def test_markov_learns_the_scale_walk():
    data = scale_data()
    gen = MarkovGenerator(order=3).fit([data.song(s) for s in data.songs("train")])
    window = data.song(0)[None, :8]  # ... 71, 72 -> 71 next (the walk turns down)
    window[0, -2:, 0] = [69, 71]
    probs = gen.next_pitch_proba(window)
    assert probs.shape == (1, 128)
    assert probs.sum() == pytest.approx(1.0)
    assert probs[0].argmax() == 72
    assert probs[0, 72] > 0.9
    assert probs.min() > 0  # smoothed: every pitch keeps a finite cost


@pytest.mark.parametrize("name", ["markov", "forest", "ffnn", "lstm_tonedeaf", "note_lstm"])
def test_train_save_load_roundtrip(tmp_path, name):
    torch.set_num_threads(1)
    data = scale_data()
    params = tiny_params()
    spec = params.model.generators[name]
    info = train_generator(name, spec, params, data, tmp_path / name, progress_bar=False)
    assert info["train_seconds"] >= 0
    assert (tmp_path / name / "meta.json").exists()
    gen = load_generator(tmp_path / name)
    x, _ = data.windows("test")
    probs = gen.next_pitch_proba(x[:5])
    assert probs.shape == (5, 128)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-6)
    again = load_generator(tmp_path / name).next_pitch_proba(x[:5])
    np.testing.assert_allclose(probs, again, rtol=1e-6)
    if name in ("ffnn", "lstm_tonedeaf", "note_lstm"):
        assert (tmp_path / name / "best.ckpt").exists()
        assert [r for r in info["history"] if "val_loss" in r]


def test_tonedeaf_pitch_distribution_is_shifted_intervals(tmp_path):
    from midiml.generate.lstm import ToneDeafLSTM

    torch.manual_seed(0)
    m = ToneDeafLSTM(n_in=4, hidden=8, embed=4, layers=1).eval()
    w = torch.tensor(
        [[[60, 80, 0.2, 0.2], [62, 80, 0.2, 0.2], [64, 80, 0.2, 0.2], [65, 80, 0.2, 0.2]]]
    )
    up = w.clone()
    up[..., 0] += 7
    with torch.no_grad():
        lp, lp_up = m.pitch_log_probs(w), m.pitch_log_probs(up)
        iv_logits, _ = m.heads(w)
    assert torch.allclose(lp.exp().sum(), torch.tensor(1.0), atol=1e-5)
    # transposing the window transposes the prediction: the model is tone-deaf
    assert torch.allclose(lp[0, 40:100], lp_up[0, 47:107], atol=1e-5)
    # p(pitch 67) / p(pitch 66) equals the ratio of the interval logits +2 / +1
    assert float(lp[0, 67] - lp[0, 66]) == pytest.approx(
        float(iv_logits[0, 48 + 2] - iv_logits[0, 48 + 1]), abs=1e-4
    )


def test_sample_pitches_temperature_topk_seed():
    probs = np.tile(np.linspace(1, 2, 128), (4, 1))
    probs /= probs.sum(axis=1, keepdims=True)
    assert (sample_pitches(probs, temperature=0) == 127).all()
    assert (sample_pitches(probs, 1.0, top_k=1, rng=np.random.default_rng(3)) == 127).all()
    a = sample_pitches(np.tile(probs, (50, 1)), 1.0, 0, np.random.default_rng(5))
    b = sample_pitches(np.tile(probs, (50, 1)), 1.0, 0, np.random.default_rng(5))
    assert (a == b).all()
    top3 = sample_pitches(np.tile(probs, (50, 1)), 1.0, 3, np.random.default_rng(5))
    assert set(top3.tolist()) <= {125, 126, 127}


def test_continuations_are_seeded_and_take_the_prompt_rhythm():
    data = scale_data()
    gen = MarkovGenerator(order=3).fit([data.song(s) for s in data.songs("train")])
    prompts = [data.song(0)[:16], data.song(1)[5:25]]
    c1 = continue_events(gen, prompts, 12, temperature=1.0, seed=4)
    c2 = continue_events(gen, prompts, 12, temperature=1.0, seed=4)
    assert all(np.array_equal(a, b) for a, b in zip(c1, c2, strict=True))
    assert c1[0].shape == (12, 4)
    assert set(c1[0][:, 2].tolist()) <= set(prompts[0][:, 2].tolist())
    greedy = continue_events(gen, prompts[:1], 6, temperature=0)[0][:, 0]
    walk = (SCALE + SCALE[-2:0:-1]) * 20
    assert greedy.tolist() == walk[16:22]  # greedy Markov continues the walk exactly
    cont = continue_seconds(gen, prompts[0], seconds=5.0, seed=1)
    assert np.cumsum(cont[:, 2])[-1] == pytest.approx(5.0, abs=0.26)
    with pytest.raises(ValueError, match="at least"):
        continue_events(gen, [data.song(0)[:1]], 3)


def test_model_durations_are_used_only_when_asked():
    """Default: every model replays the prompt's durations; opt-in: the model's own head."""
    data = scale_data()

    class TimedMarkov(MarkovGenerator):
        def next_duration(self, windows):
            return np.full(len(windows), 0.77, np.float32)

    gen = TimedMarkov(order=3).fit([data.song(s) for s in data.songs("train")])
    prompt = data.song(0)[:16]
    replayed = continue_events(gen, [prompt], 8, seed=2)[0]
    assert set(replayed[:, 3].tolist()) <= set(prompt[:, 3].tolist())
    own = continue_events(gen, [prompt], 8, seed=2, model_durations=True)[0]
    assert np.allclose(own[:, 3], 0.77)
    assert np.array_equal(own[:, 0], replayed[:, 0])  # pitches do not depend on the flag here


def stages_reading(key: str) -> list[str]:
    """The DVC stages (foreach expanded by DVC itself) whose params include ``key``."""
    from dvc.repo import Repo

    from tests.conftest import REPO

    readers = []
    with Repo(str(REPO)) as repo:
        for stage in repo.index.stages:
            for dep in stage.params:
                if any(key == p or key.startswith(f"{p}.") for p in dep.params):
                    readers.append(stage.addressing)
    return sorted(set(readers))


def test_one_generator_setting_retrains_that_generator_alone():
    """`dvc exp run -S model.generators.ffnn.module.loss.alpha=...`: ffnn, then evaluation."""
    readers = stages_reading("model.generators.ffnn.module.loss.alpha")
    assert readers == ["evaluate_generators", "ffnn_ablation", "train_generator@ffnn"]
    # model.loss (the card's `-S model.loss.alpha=...`): the ablation lists it; the ffnn
    # generator reads it through its interpolated module.loss (tests/test_exp_run.py runs it)
    assert stages_reading("model.loss.alpha") == ["ffnn_ablation"]
    assert "train_generator@markov" in stages_reading("model.generators.markov.module.order")
    assert "train_generator@ffnn" not in stages_reading("model.generators.markov.module.order")


def scale_workdir(workdir, params) -> None:
    """A stage's working folder: ``params`` as params.yaml, plus the windows, notes and splits
    of six scale songs, where the generator stages read them."""
    import yaml
    from omegaconf import OmegaConf

    (workdir / "params.yaml").write_text(yaml.safe_dump(OmegaConf.to_container(params)))
    (workdir / "data" / "processed").mkdir(parents=True)
    (workdir / "data" / "interim").mkdir(parents=True)
    scale_data(n_songs=6, length=80).save(workdir / "data" / "processed" / "windows.npz")
    notes, splits = scale_tables(n_songs=6, length=80)
    notes.to_parquet(workdir / "data" / "interim" / "notes.parquet")
    splits.to_parquet(workdir / "data" / "interim" / "splits.parquet")
