"""Multi-track REMI+BPE tokens and the token Transformer: round trip, numpy == torch, valid
successions, instruments kept, training end to end (+ resume)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("miditok")

from midiml.generate.transformer_numpy import NumpyTransformer, TransformerContinuer  # noqa: E402
from midiml.represent import tokens as tk  # noqa: E402

GENRES = ["classical", "lofi"]


def band_notes(n_bars: int = 4, shift: int = 0) -> dict[str, np.ndarray]:
    """A 3-track song on the 8th-note grid: piano chords, bass line, drums."""
    rows = []
    for bar in range(n_bars):
        for beat in range(4):
            t = bar * 4 + beat
            for p in (60, 64, 67):
                rows.append((0, 0, False, p + shift + (bar % 2) * 2, 80, t, 1.0))
            rows.append((1, 33, False, 36 + shift + beat, 90, t + 0.5, 0.5))
            rows.append((2, 0, True, 36 if beat % 2 == 0 else 38, 100, t, 0.25))
            rows.append((2, 0, True, 42, 70, t + 0.5, 0.25))
    cols = ("track", "program", "is_drum", "pitch", "velocity", "onset_beats", "duration_beats")
    table = {c: np.array([r[i] for r in rows]) for i, c in enumerate(cols)}
    table["onset_s"] = table["onset_beats"] * 0.5
    table["duration_s"] = table["duration_beats"] * 0.5
    return table


@pytest.fixture(scope="module")
def tokenizer():
    tok = tk.make_tokenizer()
    tk.train_bpe(
        tok, [tk.base_ids(tok, tk.notes_to_score(band_notes(4, s))) for s in range(3)], 500
    )
    return tok


def test_multitrack_tokens_round_trip(tokenizer, tmp_path):
    """Score (written by symusic, read back) -> BPE ids -> base ids -> the same notes."""
    import symusic

    song = band_notes()
    path = tmp_path / "band.mid"
    tk.notes_to_score(song).dump_midi(str(path))
    score = symusic.Score(str(path))
    assert len(score.tracks) == 3
    ids = tk.encode(tokenizer, score)
    base = [b for i in ids for b in tk.expansions(tokenizer)[i]]
    assert len(ids) < len(base)  # BPE shortens
    assert list(base) == list(tk.base_ids(tokenizer, score))
    types, values = tk.base_vocab_table(tokenizer)
    assert tk.invalid_successions(base, types, values) == 0
    back = tk.decode_notes(base, types, values, tk.positions_per_beat(tokenizer))
    program = np.where(song["is_drum"], -1, song["program"])
    want = sorted(
        zip(program, song["pitch"], song["onset_beats"], song["duration_beats"], strict=True)
    )
    got = sorted(
        zip(
            back["program"], back["pitch"], back["onset_beats"], back["duration_beats"], strict=True
        )
    )
    assert [tuple(map(float, w)) for w in want] == [tuple(map(float, g)) for g in got]
    # MidiTok's own decoder agrees on the tracks
    decoded = tokenizer.decode([int(i) for i in ids])
    assert sorted((t.program, t.is_drum, len(t.notes)) for t in decoded.tracks) == [
        (0, False, 48),
        (0, True, 32),
        (33, False, 16),
    ]


def tiny_network(tokenizer, context: int = 48, copy: bool = False):
    import torch

    from midiml.generate.transformer_network import TransformerNetwork

    torch.manual_seed(0)
    net = TransformerNetwork(
        len(tokenizer) + len(GENRES), context, 32, 2, 4, 0.0, copy=copy, d_copy=8
    ).eval()
    with torch.no_grad():  # larger weights than the init, so differences would show
        for p in net.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return net


@pytest.mark.parametrize("copy", [False, True])
def test_numpy_runtime_equals_torch(tokenizer, copy):
    """Logits (log-probabilities with the copy head) of numpy == torch: full pass, through
    the KV (and copy) cache step by step, torch's own cache path, greedy tokens."""
    import torch

    net = tiny_network(tokenizer, copy=copy)
    fast = NumpyTransformer(net.numpy_weights(), net.config)
    ids = np.random.default_rng(0).integers(0, len(tokenizer), size=(2, 40))
    with torch.no_grad():
        want, _ = net(torch.from_numpy(ids))
    got = fast.forward(ids, fast.new_cache(2, 48), 0)
    np.testing.assert_allclose(got, want.numpy(), atol=2e-4, rtol=1e-4)
    # KV cache: 30 tokens at once, then one at a time
    cache = fast.new_cache(2, 48)
    steps = [fast.forward(ids[:, :30], cache, 0)[:, -1]]
    steps += [fast.forward(ids[:, i : i + 1], cache, i)[:, -1] for i in range(30, 40)]
    np.testing.assert_allclose(np.stack(steps[1:], 1), want.numpy()[:, 30:], atol=2e-4, rtol=1e-4)
    # the torch cache path too, and greedy decoding picks the same tokens
    with torch.no_grad():
        _, tcache = net(torch.from_numpy(ids[:, :30]))
        step, _ = net(torch.from_numpy(ids[:, 30:31]), tcache, 30)
    np.testing.assert_allclose(step[:, 0].numpy(), want[:, 30].numpy(), atol=1e-4)
    assert (got.argmax(-1) == want.numpy().argmax(-1)).all()


def continuer(tokenizer, context: int = 48, copy: bool = False) -> TransformerContinuer:
    net = tiny_network(tokenizer, context, copy)
    return TransformerContinuer(net.numpy_weights(), net.config, tokenizer, GENRES)


@pytest.mark.parametrize(("seed", "copy"), [(0, False), (1, False), (2, True)])
def test_sampling_emits_only_valid_successions_of_the_prompts_instruments(tokenizer, seed, copy):
    """An untrained model would say anything; the masks keep every succession valid, time
    moving forward, and only the prompt's instruments (context 48 < length: refills)."""
    cont = continuer(tokenizer, copy=copy)
    prompt = band_notes(2)
    songs = cont.continue_songs(prompt, 8.0, n=3, temperature=1.5, top_p=1.0, seed=seed)
    assert len(songs) == 3
    g = cont.grammar
    base = tk.base_ids(tokenizer, tk.notes_to_score(prompt))
    ids = [int(i) for i in tk.bpe_encode(tokenizer, [base])[0]]
    end = float((prompt["onset_beats"] + prompt["duration_beats"]).max())
    for new in cont.sample(
        [cont.bos, *ids], cont.genre_id("lofi"), end, end + 16, _programs(prompt), 2, 1.5, 1.0, seed
    ):
        seq = g.base_ids([*ids, *new])
        assert tk.invalid_successions(seq, g.types, g.values) == 0
        is_prog = (g.types[seq] == tk.PROGRAM) | (g.types[seq] == tk.DRUM_PROGRAM)
        progs = set(g.values[np.asarray(seq)[is_prog]].tolist())
        assert progs <= {0, 33, -1}
    for song in songs:
        assert len(song["pitch"]) > 0
        bar = (np.floor(prompt["onset_beats"].max() / 4) + 1) * 4  # the bar after the prompt
        assert song["onset_beats"].min() >= bar - 1e-9
        assert song["onset_s"].min() >= bar * 0.5 - 1e-9
        assert set(zip(song["program"].tolist(), song["is_drum"].tolist(), strict=True)) <= {
            (0, False),
            (33, False),
            (0, True),
        }
        assert song["onset_s"].max() < end * 0.5 + 8.0 + 1e-6


def _programs(notes) -> np.ndarray:
    out = np.zeros(129, bool)
    out[np.where(notes["is_drum"], -1, notes["program"]).astype(int) + 1] = True
    return out


def test_continue_notes_and_genres(tokenizer):
    cont = continuer(tokenizer)
    melody = {
        "pitch": np.array([60, 62, 64]),
        "velocity": np.full(3, 80),
        "onset_s": np.array([0.0, 0.5, 1.0]),
        "duration_s": np.full(3, 0.5),
    }
    new = cont.continue_notes(melody, 3.0, seed=1, genre="classical")
    assert set(new) >= {"pitch", "velocity", "onset_s", "duration_s"}
    assert new["onset_s"].min() >= 1.5 - 1e-9 and not new["is_drum"].any()
    with pytest.raises(ValueError, match="unknown genre"):
        cont.continue_notes(melody, 2.0, genre="polka")


def test_transformer_trains_exports_and_resumes(tokenizer, tmp_path):
    """The stage's path on a tiny song set: checkpoint, weights.npz, tokenizer, meta; the
    saved model continues; a resumed run starts from last.ckpt."""
    import pandas as pd

    from midiml.generate.transformer import train_transformer
    from tests.conftest import tiny_params

    frames = []
    for k, song in enumerate("abcd"):
        one = pd.DataFrame(band_notes(4, k))
        frames.append(one.assign(file_id=song))
    notes = pd.concat(frames)
    splits = pd.DataFrame(
        {"file_id": list("abcd"), "split": ["train", "train", "val", "test"], "genre": "lofi"}
    )
    tok = tk.make_tokenizer()
    data = tk.build_token_dataset(notes, splits, tok, GENRES, 1, (-2, 2), 4, 450)
    np.savez(tmp_path / "tokens.npz", **data)
    tk.save_tokenizer(tok, tmp_path / "tok.json", GENRES)
    net = {"context": 32, "d_model": 16, "n_layers": 1, "n_heads": 2}
    params = tiny_params(
        model={
            "transformer": {
                "module": {"net": net, "total_steps": 4, "warmup_steps": 1},
                "datamodule": {"context": 32, "batch_size": 4, "train_windows": 8, "passes": 10},
                "max_epochs": 1,
                "resume": True,
            }
        }
    )
    out = tmp_path / "model"
    out.mkdir()
    info = train_transformer(
        params.model.transformer,
        params,
        tmp_path / "tokens.npz",
        tmp_path / "tok.json",
        out,
        tmp_path / "ck",
    )
    assert info["epochs"] >= 1 and np.isfinite(info["best_val_loss_nats_per_token"])
    assert (tmp_path / "ck" / "last.ckpt").exists()
    cont = TransformerContinuer.load(out)
    song = cont.continue_song(band_notes(2), 4.0, seed=0, genre="lofi")
    assert set(song) >= {"pitch", "velocity", "onset_s", "duration_s", "program", "is_drum"}
    bits = cont.token_bits(data)
    assert bits["notes"] > 0 and np.isfinite(bits["all_bits_per_note"])


def test_a_variation_without_notes_is_drawn_again(tokenizer):
    """No prompt is left silent: an empty draw (here forced once) is sampled again."""
    cont = continuer(tokenizer)
    real, calls = cont.sample, []

    def first_empty(*args):
        calls.append(args[5])
        return [[] for _ in range(args[5])] if len(calls) == 1 else real(*args)

    cont.sample = first_empty
    songs = cont.continue_songs(band_notes(2), 6.0, n=2, seed=0)
    assert calls == [2, 2] and all(len(s["pitch"]) for s in songs)
