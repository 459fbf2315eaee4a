"""REMI tokens and the token Transformer's sampler: round trip, grammar, short prompts."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("miditok")

from midiml.generate.prompted import SamplingGuards  # noqa: E402
from midiml.generate.transformer import TokenTransformer, TransformerContinuer  # noqa: E402
from midiml.represent import tokens as tk  # noqa: E402
from midiml.represent.tonality import estimate_key  # noqa: E402

MELODY = [60, 62, 64, 65, 67, 65, 64, 62, 60, 64, 67, 72]


@pytest.fixture(scope="module")
def tokenizer():
    return tk.make_tokenizer(["classical", "lofi"])


def melody_score(pitches=MELODY, chord_at: int | None = 4):
    on = np.arange(len(pitches), dtype=float) * 0.5
    pitch, onset = list(pitches), list(on)
    if chord_at is not None:  # one chord: two notes at the same onset
        pitch.append(pitches[chord_at] + 4)
        onset.append(on[chord_at])
    n = len(pitch)
    return tk.notes_to_score(np.array(pitch), np.full(n, 80), np.array(onset), np.full(n, 0.5))


def test_tokens_midi_tokens_round_trip(tokenizer, tmp_path):
    ids = tk.encode(tokenizer, melody_score())
    path = tmp_path / "back.mid"
    tk.decode(tokenizer, ids).dump_midi(str(path))
    import symusic

    again = tk.encode(tokenizer, symusic.Score(str(path)))
    assert list(again) == list(ids)
    types = tk.token_types(tokenizer)
    assert tk.invalid_successions(ids, types, tk.token_values(tokenizer)["position"]) == 0


def test_tokenizer_saves_its_genres(tokenizer, tmp_path):
    tk.save_tokenizer(tokenizer, tmp_path / "tok.json")
    back = tk.load_tokenizer(tmp_path / "tok.json")
    assert back.vocab == tokenizer.vocab and "Genre_lofi" in back.vocab


def tiny_model(tokenizer):
    import torch

    torch.manual_seed(0)
    return TokenTransformer(vocab_size=len(tokenizer), context=32, d_model=16, n_layers=1)


@pytest.mark.parametrize("guards", [True, False])
def test_sampling_never_emits_an_invalid_succession(tokenizer, guards):
    """An untrained model would say anything; the grammar guard keeps the sequence valid."""
    off = SamplingGuards(False, False, False, False)
    cont = TransformerContinuer(tiny_model(tokenizer), tokenizer, None if guards else off)
    prompt = tk.encode(tokenizer, melody_score())
    types, pos = cont.types, cont.values["position"]
    for seed in range(3):
        new = cont.sample(prompt, "lofi", 16.0, 1.5, 1.0, seed)  # context 32 < length: cache resets
        assert len(new) > 40
        assert tk.invalid_successions([*prompt, *new], types, pos) == 0
        assert int(types[new[-1]]) == tk.DURATION  # ends on a complete note


@pytest.mark.parametrize("n_notes", [1, 8])
def test_short_prompts_continue_in_key(tokenizer, n_notes):
    cont = TransformerContinuer(tiny_model(tokenizer), tokenizer)
    pitches = np.array(MELODY[:n_notes], float)
    prompt = {
        "pitch": pitches,
        "velocity": np.full(n_notes, 80.0),
        "onset_s": np.arange(n_notes) * 0.5,
        "duration_s": np.full(n_notes, 0.5),
    }
    new = cont.continue_notes(prompt, 4.0, seed=1, genre="classical")
    assert len(new["pitch"]) >= 2
    assert new["onset_s"].min() > prompt["onset_s"].max() - 1e-9
    assert new["onset_s"].max() <= prompt["onset_s"].max() + 0.5 + 4.0 + 1e-6
    key = estimate_key(pitches)
    assert key.scale[new["pitch"].astype(int) % 12].mean() >= 0.8  # guards on (1% leak)
    with pytest.raises(ValueError, match="unknown genre"):
        cont.continue_notes(prompt, 2.0, genre="polka")


def test_transformer_training_does_not_depend_on_the_random_state_before_it(tokenizer, tmp_path):
    """The weights are drawn after seeding: the same params give the same model."""
    import pandas as pd
    import torch

    from midiml.generate.transformer import train_transformer
    from tests.conftest import tiny_params

    rows = []
    for k, song in enumerate("abcd"):
        for i, p in enumerate(MELODY * 3):
            rows.append((song, p + k, i * 0.5, 0.5))
    notes = pd.DataFrame(rows, columns=["file_id", "pitch", "onset_beats", "duration_beats"])
    notes = notes.assign(velocity=80, is_drum=False, track=0)
    splits = pd.DataFrame(
        {"file_id": list("abcd"), "split": ["train", "train", "val", "test"], "genre": "lofi"}
    )
    data = tk.build_token_dataset(notes, splits, tokenizer)
    np.savez(tmp_path / "tokens.npz", **data)
    tk.save_tokenizer(tokenizer, tmp_path / "tok.json")
    params = tiny_params(
        model={
            "transformer": {
                "module": {"context": 32, "d_model": 16, "n_layers": 1, "n_heads": 2},
                "datamodule": {"context": 32, "batch_size": 4, "train_windows": 8},
                "max_epochs": 1,
            }
        }
    )
    losses = []
    for noise in (1, 2):
        torch.manual_seed(noise)  # some earlier use of the global generator
        out = tmp_path / f"out{noise}"
        out.mkdir()
        info = train_transformer(
            params.model.transformer, params, tmp_path / "tokens.npz", tmp_path / "tok.json", out
        )
        losses.append(info["best_val_loss_nats_per_token"])
    assert losses[0] == losses[1]
