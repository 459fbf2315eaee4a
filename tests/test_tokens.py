"""Multi-track REMI+BPE tokens and the token Transformer: round trip, numpy == torch, valid
successions, instruments kept, training end to end (+ resume)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("miditok")

from midiml.generate import transformer_numpy as tn  # noqa: E402
from midiml.generate.transformer_numpy import NumpyTransformer, TransformerContinuer  # noqa: E402
from midiml.represent import tokens as tk  # noqa: E402

GENRES = ["classical", "lofi"]
BAR_INPUTS = tn.BAR_POSITIONS * tn.PLAN_STATES  # bar position x plan state


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


def _plan_tokens(tokenizer, ids) -> list[str]:
    inv = {v: k for k, v in tokenizer.vocab.items()}
    return [inv[int(i)] for i in ids if inv[int(i)].startswith(("BarNotes", "BarPoly", "Bar_"))]


def test_bar_plans_of_hand_made_bars(tokenizer):
    """Each Bar comes after its bar's plan: notes (drums too) and pitched notes per pitched
    onset, in buckets: a bar of a C triad + one note + two drum hits (6 notes, 4 pitched
    notes on 2 onsets = 2.0), an empty bar, a drums-only bar, a 3-note line."""
    rows = [(0, 0, False, p, 80, 0.0, 1.0) for p in (60, 64, 67)]
    rows += [(0, 0, False, 62, 80, 1.0, 1.0)]
    rows += [(1, 0, True, 36, 90, b, 0.25) for b in (0.0, 2.0)]
    rows += [(1, 0, True, 42, 90, 8.0 + b, 0.25) for b in range(4)]  # bar 2: drums only
    rows += [(0, 0, False, 60 + k, 80, 12.0 + k, 1.0) for k in range(3)]  # bar 3: a line
    cols = ("track", "program", "is_drum", "pitch", "velocity", "onset_beats", "duration_beats")
    song = {c: np.array([r[i] for r in rows]) for i, c in enumerate(cols)}
    base = tk.base_ids(tokenizer, tk.notes_to_score(song))
    assert _plan_tokens(tokenizer, base) == [
        *("BarNotes_5", "BarPoly_18", "Bar_None"),  # 6 notes; 2.0 per onset
        *("BarNotes_0", "BarPoly_0", "Bar_None"),  # empty
        *("BarNotes_3", "BarPoly_0", "Bar_None"),  # 4 drum notes, no pitched onset
        *("BarNotes_3", "BarPoly_10", "Bar_None"),  # 3 single notes
    ]
    types, values = tk.base_vocab_table(tokenizer)
    assert tk.invalid_successions(base, types, values) == 0
    # BPE keeps each plan token one id, right before the id that starts its bar
    ids = tk.encode(tokenizer, tk.notes_to_score(song))
    ex = tk.expansions(tokenizer)
    plan_ids = [int(i) for i in ids if ex[i] and types[ex[i][0]] in (tk.BAR_NOTES, tk.BAR_POLY)]
    assert plan_ids == [int(i) for i in base if types[i] in (tk.BAR_NOTES, tk.BAR_POLY)]
    # (this toy BPE may leave the word marker of a bar as an id of its own: no base token)
    after_plan = [
        [x for i in ids[k + 1 : k + 3] for x in ex[i]][0]
        for k in range(len(ids) - 1)
        if ex[ids[k]] and types[ex[ids[k]][0]] == tk.BAR_POLY
    ]
    assert after_plan == [tokenizer.vocab["Bar_None"]] * 4
    assert [x for i in ids for x in ex[i]] == base.tolist()


def test_bar_plan_buckets():
    notes, poly = tk.plan_buckets(
        np.array([0, 1, 2, 4, 6, 9, 13, 19, 27, 39, 40, 400]),
        np.array([0, 10, 14, 20, 25, 30, 40, 50, 60, 99, 12.9, 13]),
    )
    assert notes.tolist() == list(range(11)) + [10]
    assert poly.tolist() == [0, 1, 2, 3, 4, 5, 6, 7, 8, 8, 1, 2]


def test_bar_plans_survive_save_and_load(tokenizer, tmp_path):
    """The plan tokens are special tokens of MidiTok's config: saved and loaded with it."""
    tk.save_tokenizer(tokenizer, tmp_path / "tok.json", GENRES)
    back, genres = tk.load_tokenizer(tmp_path / "tok.json")
    assert genres == GENRES and back.vocab == tokenizer.vocab
    assert all(t in back.vocab for t in tk.PLAN_TOKENS)
    score = tk.notes_to_score(band_notes(3))
    assert tk.encode(back, score).tolist() == tk.encode(tokenizer, score).tolist()


def test_held_plan_writes_the_prompts_recent_plan(tokenizer):
    """plan="held": every new bar's plan is the median of the prompt's last 4 bars' plans;
    free: the (untrained) model draws others."""
    prompt = band_notes(6)
    base = tk.base_ids(tokenizer, tk.notes_to_score(prompt))
    ids = [int(i) for i in tk.bpe_encode(tokenizer, [base])[0]]
    plans = {}
    for plan in ("free", "held"):
        cont = continuer(tokenizer, copy=True, plan=plan)
        held = cont.held_plan([cont.bos, *ids])
        # 24 notes a bar (12 chord notes, 4 bass, 8 drums); 16 pitched on 8 onsets = 2.0
        assert (tk.BAR_NOTES_BOUNDS[held[0]], tk.BAR_POLY_BOUNDS[held[1]]) == (20, 18)
        seqs = cont.sample(
            [cont.bos, *ids], cont.genre_id("lofi"), 24.0, 40.0, _programs(prompt), 4, 1.5, 1.0, 0
        )
        g = cont.grammar
        new = [i for s in seqs for i in s]
        plans[plan] = {(int(g.plan[0, i]), int(g.plan[1, i])) for i in new if g.plan[0, i] >= 0}
        plans[plan] |= {(-1, int(g.plan[1, i])) for i in new if g.plan[1, i] >= 0}
        assert all(
            tk.invalid_successions(g.base_ids([*ids, *s]), g.types, g.values) == 0 for s in seqs
        )
        assert sum(g.n_bars[new]) >= 4 * 3  # each variation wrote its bars
    assert plans["held"] == {(held[0], -1), (-1, held[1])}
    assert len(plans["free"]) > 2


def tiny_network(tokenizer, context: int = 48, copy: bool = False, bar_positions: int = 0):
    import torch

    from midiml.generate.transformer_network import TransformerNetwork

    torch.manual_seed(0)
    net = TransformerNetwork(
        len(tokenizer) + len(GENRES), context, 32, 2, 4, 0.0, copy=copy, d_copy=8,
        bar_positions=bar_positions,
    ).eval()  # fmt: skip
    with torch.no_grad():  # larger weights than the init, so differences would show
        for p in net.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return net


@pytest.mark.parametrize(("copy", "bar_positions"), [(False, 0), (True, 0), (True, 33)])
def test_numpy_runtime_equals_torch(tokenizer, copy, bar_positions):
    """Logits (log-probabilities with the copy head) of numpy == torch: full pass, through
    the KV (and copy) cache step by step, torch's own cache path, greedy tokens; with bar
    positions as an input too."""
    import torch

    net = tiny_network(tokenizer, copy=copy, bar_positions=bar_positions)
    fast = NumpyTransformer(net.numpy_weights(), net.config)
    ids = np.random.default_rng(0).integers(0, len(tokenizer), size=(2, 40))
    bars = np.random.default_rng(1).integers(0, 33, size=(2, 40)) if bar_positions else None
    tb = None if bars is None else torch.from_numpy(bars)
    with torch.no_grad():
        want, _ = net(torch.from_numpy(ids), bars=tb)
    got = fast.forward(ids, fast.new_cache(2, 48), 0, bars)
    np.testing.assert_allclose(got, want.numpy(), atol=2e-4, rtol=1e-4)
    # KV cache: 30 tokens at once, then one at a time
    cache = fast.new_cache(2, 48)

    def at(a, b):
        return None if bars is None else bars[:, a:b]

    steps = [fast.forward(ids[:, :30], cache, 0, at(0, 30))[:, -1]]
    steps += [fast.forward(ids[:, i : i + 1], cache, i, at(i, i + 1))[:, -1] for i in range(30, 40)]
    np.testing.assert_allclose(np.stack(steps[1:], 1), want.numpy()[:, 30:], atol=2e-4, rtol=1e-4)
    # the torch cache path too, and greedy decoding picks the same tokens
    with torch.no_grad():
        tb30 = None if tb is None else tb[:, :30]
        _, tcache = net(torch.from_numpy(ids[:, :30]), bars=tb30)
        step, _ = net(
            torch.from_numpy(ids[:, 30:31]), tcache, 30, None if tb is None else tb[:, 30:31]
        )
    np.testing.assert_allclose(step[:, 0].numpy(), want[:, 30].numpy(), atol=1e-4)
    assert (got.argmax(-1) == want.numpy().argmax(-1)).all()


def continuer(
    tokenizer, context: int = 48, copy: bool = False, bar_positions: int = 0, **decoding
) -> TransformerContinuer:
    """An untrained token continuer; plain sampling (no min-p, no prompt guidance) unless
    ``decoding`` says otherwise, so a high temperature draws widely."""
    net = tiny_network(tokenizer, context, copy, bar_positions)
    decoding = {"min_p": 0.0, "prompt_guidance": 0.0} | decoding
    return TransformerContinuer(net.numpy_weights(), net.config, tokenizer, GENRES, **decoding)


def test_bar_positions_follow_the_remi_state(tokenizer):
    """After each id: 0 after a Bar or a special token, k + 1 after Position_k, unchanged by
    note tokens; BPE ids that merge a Position (or a Bar) into notes count too."""
    cont = continuer(tokenizer)
    g = cont.grammar
    base = tk.base_ids(tokenizer, tk.notes_to_score(band_notes(2)))
    ids = np.r_[cont.genre_id("lofi"), cont.bos, tk.bpe_encode(tokenizer, [base])[0]]
    want, pos = [], -1
    for i in ids:  # base token by base token, the state after the id's last one
        if g.special[i]:
            pos = -1
        for b in g.expand[i] if i < len(g.expand) else []:
            if g.types[b] == tk.BAR:
                pos = -1
            elif g.types[b] == tk.POSITION:
                pos = int(g.values[b])
        want.append(pos + 1)
    got = g.bar_positions(ids) // g.plan_states  # the position part of the bar input
    assert got.tolist() == want
    assert got.max() == 29  # the bass's last 8th (beat 3.5 = position 28) + 1
    assert any(len(g.expand[i]) > 1 and g.first_pos[i] >= 0 for i in ids[2:])  # merged ids


def test_plan_state_says_how_many_planned_notes_the_bar_misses(tokenizer):
    """The bar input's plan state: after a BarNotes id every planned note is missing, each
    note id counts, a real bar ends inside its own planned range; more notes = past it."""
    g = continuer(tokenizer).grammar
    base = tk.base_ids(tokenizer, tk.notes_to_score(band_notes(2)))
    ids = tk.bpe_encode(tokenizer, [base])[0]
    lo, hi, count = g.plan_track(ids)
    state = g.plan_state(lo, hi, count)
    plan_at = np.flatnonzero(g.plan_lo[ids] >= 0)
    assert len(plan_at) == 2
    ends = np.r_[plan_at[1:] - 1, len(ids) - 1]  # each bar's last id (before the next plan)
    assert (count[plan_at] == 0).all() and (lo[plan_at] > 0).all()
    assert (state[plan_at] == np.searchsorted(tn.REMAINING_BOUNDS, lo[plan_at], "right")).all()
    assert (state[plan_at] > 0).all()
    assert (state[ends] == 0).all()  # every bar ends with as many notes as it planned
    assert (np.diff(count[plan_at[0] : ends[0] + 1]) >= 0).all()
    assert g.plan_state(np.array([3]), np.array([4]), np.array([5]))[0] == tn.PLAN_STATES - 1
    assert g.plan_state(np.array([-1]), np.array([-1]), np.array([7]))[0] == 0  # no plan yet
    assert g.bar_positions(ids).max() < g.n_bar_inputs


def test_sampling_feeds_the_bar_positions_training_computes(tokenizer):
    """The network reads, at every step of sampling (cache, slides of the window), the bar
    positions that Grammar.bar_positions gives the whole sequence in training."""
    cont = continuer(tokenizer, context=16, bar_positions=BAR_INPUTS)  # slides often
    g, fed = cont.grammar, []
    forward = cont.net.forward

    def spy(ids, cache, start, bars=None):
        fed.append((np.asarray(ids).copy(), np.asarray(bars).copy(), start))
        return forward(ids, cache, start, bars)

    cont.net.forward = spy
    prompt = band_notes(6, 1)
    base = tk.base_ids(tokenizer, tk.notes_to_score(prompt))
    ids = [cont.bos, *(int(i) for i in tk.bpe_encode(tokenizer, [base])[0])]
    assert len(ids) > 12  # longer than 3/4 of the context: the prompt's window is its end
    gid = cont.genre_id("lofi")
    (new,) = cont.sample(ids, gid, 24.0, 40.0, _programs(prompt), 1, 1.5, 1.0, 0)
    seq = np.asarray([gid, *ids, *new])
    want = g.bar_positions(seq)
    first_ids, first_bars, _ = fed[0]  # the prompt's window (its last ids when it is long)
    n = first_ids.shape[1] - 1
    assert (
        first_bars[0, 0] == 0 and (first_bars[0, 1:] == want[len(ids) + 1 - n : len(ids) + 1]).all()
    )
    assert len(fed) == len(new)  # every drawn id but the last is fed once
    slides = 0
    for k, (step_ids, bars, start) in enumerate(fed[1:]):
        at = len(ids) + 1 + k  # the k-th new id in the whole sequence
        if start > 0:  # one new id through the cache
            assert step_ids[0, 0] == seq[at] and bars[0, 0] == want[at]
        else:  # the window slid: the genre id + the sequence's last ids up to this one
            slides += 1
            n = step_ids.shape[1] - 1
            assert (step_ids[0, 1:] == seq[at + 1 - n : at + 1]).all()
            assert bars[0, 0] == 0 and (bars[0, 1:] == want[at + 1 - n : at + 1]).all()
    assert slides >= 2


@pytest.mark.parametrize(
    ("seed", "copy", "default", "plan"),
    [
        (0, False, False, "free"),
        (1, False, False, "free"),
        (2, True, False, "free"),
        (3, True, True, "free"),
        (4, True, True, "held"),
    ],
)
def test_sampling_emits_only_valid_successions_of_the_prompts_instruments(
    tokenizer, seed, copy, default, plan
):
    """An untrained model would say anything; the masks keep every succession valid (bar
    plans included, free or held), time moving forward, and only the prompt's instruments
    (context 48 < length: refills), also with the default decoding (min-p, guidance)."""
    decoding = {"min_p": tn.MIN_P, "prompt_guidance": tn.PROMPT_GUIDANCE} if default else {}
    cont = continuer(tokenizer, copy=copy, plan=plan, **decoding)
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


@pytest.mark.parametrize("seed", [0, 1])
def test_a_pitch_struck_again_at_one_onset_of_an_instrument_is_one_note(tokenizer, seed):
    """One new track per instrument plays a repeated (instrument, pitch, onset) as one note:
    the continuation keeps one of each, the longest (an untrained model at a high temperature
    repeats some)."""
    cont = continuer(tokenizer, copy=True)
    songs = cont.continue_songs(band_notes(2), 16.0, n=3, temperature=3.0, top_p=1.0, seed=seed)
    for song in songs:
        key = np.stack([song["program"], song["is_drum"], song["pitch"], song["onset_beats"]], 1)
        assert len(key) > 20 and len(np.unique(key, axis=0)) == len(key)
    dup = {
        "pitch": np.array([60.0, 60, 60, 64]),
        "velocity": np.full(4, 80.0),
        "onset_beats": np.array([0.0, 0, 0, 0]),
        "duration_beats": np.array([1.0, 2, 2, 1]),
        "program": np.array([0.0, 0, 33, 0]),
    }
    assert tn._struck_again(dup).tolist() == [True, False, False, False]


def _notes_after_a_repeat(cont, new_ids: list[int]) -> int:
    """Ids drawn at an onset after one of its instruments struck a pitch a second time (in
    an earlier id) that add a note there."""
    g, seen, prog, closed, after = cont.grammar, set(), 0, False, 0
    for i in new_ids:
        after += closed and bool(g.note_here[i])
        for b in g.expand[i]:
            t, v = int(g.types[b]), int(g.values[b])
            if t in (tk.BAR, tk.POSITION):
                seen, closed = set(), False
            elif t in (tk.PROGRAM, tk.DRUM_PROGRAM):
                prog = v
            elif t in (tk.PITCH, tk.PITCH_DRUM):
                closed |= (prog, v) in seen
                seen.add((prog, v))
    return after


def test_an_onset_ends_when_an_instrument_strikes_a_pitch_again(tokenizer):
    """The stuck loop of a model cycling through the chord it just wrote: once an instrument
    repeats a pitch at an onset, no further note is drawn there (the next id moves on in
    time); without the rule an untrained model at a high temperature keeps adding notes."""
    cont = continuer(tokenizer, copy=True)
    prompt = band_notes(2)
    base = tk.base_ids(tokenizer, tk.notes_to_score(prompt))
    ids = [cont.bos, *(int(i) for i in tk.bpe_encode(tokenizer, [base])[0])]
    after = {}
    for close in (False, True):
        cont.close_repeats = close
        # 16 variations: with bar plans the untrained model's draws differ; 4 had no repeat
        seqs = cont.sample(
            ids, cont.genre_id("lofi"), 8.0, 24.0, _programs(prompt), 16, 3.0, 1.0, 0
        )
        after[close] = sum(_notes_after_a_repeat(cont, s) for s in seqs)
        assert all(
            tk.invalid_successions(cont.grammar.base_ids(ids[1:] + s), *_tv(cont)) == 0
            for s in seqs
        )
    assert after[False] > 0 and after[True] == 0


def _tv(cont) -> tuple[np.ndarray, np.ndarray]:
    return cont.grammar.types, cont.grammar.values


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


def test_training_windows_carry_the_bar_positions_of_their_song(tokenizer):
    """A window that starts mid-song (mid-bar) gets the bar positions counted from its song's
    start, the genre id and padding 0: what sampling feeds the network."""
    import pandas as pd

    from midiml.generate.transformer import TokenWindows

    notes = pd.concat(
        [pd.DataFrame(band_notes(4, k)).assign(file_id=f) for k, f in enumerate("ab")]
    )
    splits = pd.DataFrame({"file_id": ["a", "b"], "split": "train", "genre": "lofi"})
    tok = tk.make_tokenizer()
    data = tk.build_token_dataset(notes, splits, tok, GENRES, 0, (0, 0), 4, 450)
    g = tn.Grammar(tok, len(GENRES))
    bars = g.bar_positions(data["ids"])
    windows = TokenWindows(data, "train", 8, 20, 0, bars)
    for i in range(len(windows)):
        item = windows[i].numpy()
        s = int(windows.starts[i])
        song = int(np.searchsorted(data["offsets"], s, side="right")) - 1
        own = g.bar_positions(data["ids"][data["offsets"][song] : data["offsets"][song + 1]])
        n = int((item[0, 1:] != 0).sum())
        assert item[0, 0] == data["ids"][data["offsets"][song]]  # the genre id
        assert item[1, 0] == 0 and (item[1, n + 1 :] == 0).all()
        assert (item[1, 1 : n + 1] == own[s - data["offsets"][song] :][:n]).all()
    assert (windows.starts > data["offsets"][:-1].min() + 2).any()  # some start mid-song


def test_training_windows_draw_genres_by_their_tokens_power_and_pack_short_songs():
    """Two long songs of one genre, ten 10-id loops of another: drawn by tokens (power 1) the
    loops fill about 1 window in 10; every genre alike (power 0) about half. Packed, a loop's
    window is filled with whole further loops, each opening with its genre id; unpacked it is
    padded."""
    from midiml.generate.transformer import TokenWindows

    lengths = [400, 400] + [10] * 10
    genres = np.array(["long"] * 2 + ["loop"] * 10)
    ids = np.concatenate([np.r_[100 + (g == "loop"), 5 + np.arange(n - 1) % 50]
                          for g, n in zip(genres, lengths, strict=True)])  # fmt: skip
    data = {"ids": ids, "offsets": np.r_[0, np.cumsum(lengths)],
            "splits": np.array(["train"] * 12), "genres": genres}  # fmt: skip
    bars = np.ones(len(ids), np.int64)

    def loop_share(power: float, pack: bool) -> float:
        w = TokenWindows(data, "train", 32, 2000, 0, bars, genre_power=power, pack=pack)
        return float((ids[w.genre_pos] == 101).mean())

    assert loop_share(1.0, True) == pytest.approx(90 / 888, abs=0.03)
    assert loop_share(0.0, True) == pytest.approx(0.5, abs=0.05)
    packed = TokenWindows(data, "train", 32, 200, 0, bars, genre_power=0.0, pack=True)
    padded = TokenWindows(data, "train", 32, 200, 0, bars, genre_power=0.0, pack=False)
    for i in np.flatnonzero(ids[packed.genre_pos] == 101)[:20]:
        item = packed[i].numpy()
        assert (item[0] != 0).all()  # no padding
        assert set(item[0][item[0] >= 100]) == {101}  # only loops, each with its genre id
        assert (item[0] == 101).sum() >= 3
    loop = np.flatnonzero(ids[padded.genre_pos] == 101)[0]
    assert (padded[loop].numpy()[0] == 0).sum() == 33 - 10


def test_transformer_trains_exports_and_resumes(tokenizer, tmp_path):
    """The stage's path on a tiny song set: checkpoint, weights.npz, tokenizer, meta; the
    saved model continues; a resumed run starts from last.ckpt; bf16 where the CPU has it."""
    import pandas as pd

    from midiml.generate.transformer import train_transformer
    from midiml.training import native_bf16_cpu
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
    assert info["precision"] == ("bf16-mixed" if native_bf16_cpu() else "32-true")
    assert (tmp_path / "ck" / "last.ckpt").exists()
    cont = TransformerContinuer.load(out)
    song = cont.continue_song(band_notes(2), 4.0, seed=0, genre="lofi")
    assert set(song) >= {"pitch", "velocity", "onset_s", "duration_s", "program", "is_drum"}
    bits = cont.token_bits(data)
    assert bits["notes"] > 0 and np.isfinite(bits["all_bits_per_note"])
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=2):  # one BLAS thread inside whatever the caller allows
        assert cont.token_bits(data) == bits


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


def test_a_variation_of_drums_only_is_drawn_again_for_a_pitched_prompt(tokenizer):
    """The prompt's music must go on: a draw with only drum notes (here forced once, for the
    second variation) is sampled again; a drums-only prompt may get drums only."""
    cont = continuer(tokenizer)
    real, calls = cont.sample, []
    g = cont.grammar
    drum = next(
        i for i, e in enumerate(g.expand)
        if len(e) == 1 and g.types[e[0]] == tk.DRUM_PROGRAM
    )  # fmt: skip
    names = {v: k for k, v in tokenizer.vocab.items()}
    kick = next(i for i, e in enumerate(g.expand) if len(e) == 1 and names[e[0]] == "PitchDrum_36")
    vel = next(i for i, e in enumerate(g.expand) if len(e) == 1 and g.types[e[0]] == tk.VELOCITY)
    dur = next(i for i, e in enumerate(g.expand) if len(e) == 1 and g.types[e[0]] == tk.DURATION)
    bar = next(i for i, e in enumerate(g.expand) if len(e) == 1 and g.types[e[0]] == tk.BAR)
    pos0 = next(i for i, e in enumerate(g.expand) if len(e) == 1 and names[e[0]] == "Position_0")

    def drums_once(*args):
        calls.append(args[5])
        seqs = real(*args)
        if len(calls) == 1:
            seqs[1] = [bar, bar, bar, pos0, drum, kick, vel, dur, bar]
        return seqs

    cont.sample = drums_once
    songs = cont.continue_songs(band_notes(2), 6.0, n=2, seed=0)
    assert calls[:2] == [2, 1] and all((~s["is_drum"]).any() for s in songs)


def test_min_p_drops_ids_far_below_the_likeliest(tokenizer):
    """min-p keeps the ids with at least min_p x the likeliest one's probability (here 0.1
    of 0.5): the flat tail (a pitch at 0.05) is never drawn, the rest keep their odds."""
    cont = continuer(tokenizer)
    p = np.array([[0.5, 0.3, 0.15, 0.05]])
    logits, allowed = np.log(p).repeat(4000, 0), np.ones((4000, 4), bool)
    rng = np.random.default_rng(0)
    cont.min_p = 0.0
    assert (cont._draw(logits, allowed, 1.0, 1.0, rng) == 3).any()
    cont.min_p = 0.2
    drawn = cont._draw(logits, allowed, 1.0, 1.0, rng)
    counts = np.bincount(drawn, minlength=4) / len(drawn)
    assert counts[3] == 0
    np.testing.assert_allclose(counts[:3], p[0, :3] / 0.95, atol=0.03)


def test_prompt_guidance_contrasts_the_model_with_and_without_the_prompt(tokenizer):
    """With guidance w, each step draws from log p(.|prompt, new) + w (log p(.|prompt, new)
    - log p(.|new)): the second term is the same network reading the genre, BOS and the new
    ids only (with their bar positions), through its own cache."""
    cont = continuer(tokenizer, context=256, copy=True, bar_positions=BAR_INPUTS)
    cont.prompt_guidance = 0.5
    g, seen = cont.grammar, []
    draw = cont._draw

    def spy(logits, allowed, temperature, top_p, rng):
        seen.append(np.array(logits))
        return draw(logits, allowed, temperature, top_p, rng)

    cont._draw = spy
    prompt = band_notes(2)
    base = tk.base_ids(tokenizer, tk.notes_to_score(prompt))
    ids = [cont.bos, *(int(i) for i in tk.bpe_encode(tokenizer, [base])[0])]
    gid = cont.genre_id("lofi")
    (new,) = cont.sample(ids, gid, 8.0, 16.0, _programs(prompt), 1, 1.0, 1.0, 0)
    assert len(new) > 3
    full = np.asarray([gid, *ids, *new])
    bars = g.bar_positions(full)
    net = cont.net
    for k in (0, 1, len(new) - 1):
        c = full[: len(ids) + 1 + k]
        cond = net.forward(c[None], net.new_cache(1, 256), 0, bars[None, : len(c)])[0, -1]
        u = np.asarray([gid, cont.bos, *new[:k]])
        ub = np.r_[0, 0, bars[len(ids) + 1 : len(ids) + 1 + k]]
        unc = net.forward(u[None], net.new_cache(1, 256), 0, ub[None])[0, -1]
        lc, lu = tn._log_softmax(cond), tn._log_softmax(unc)
        np.testing.assert_allclose(seen[k][0], lc + 0.5 * (lc - lu), atol=1e-3)


def _bars_against_plans(g, seqs) -> tuple[int, int]:
    """(complete new bars, those whose notes lie in their BarNotes bucket)."""
    bars = inside = 0
    for seq in seqs:
        lo, hi, count = g.plan_track(np.asarray(seq, np.int64))
        plan_at = np.flatnonzero(g.plan_lo[np.asarray(seq, np.int64)] >= 0)
        for end in plan_at[1:] - 1:  # the last id of each bar that a new plan closed
            if lo[end] >= 0:
                bars += 1
                inside += int(lo[end] <= count[end] <= hi[end])
    return bars, inside


@pytest.mark.parametrize("seed", [0, 1])
def test_each_new_bar_writes_as_many_notes_as_its_own_plan(tokenizer, seed):
    """realise_plans (default): a bar ends inside its BarNotes bucket, as every training bar
    does, unless the masks leave nothing else (an untrained model at temperature 1.5 can jump
    to the bar's last onset and close it); without it its bars rarely match their plan."""
    prompt = band_notes(2)
    base = tk.base_ids(tokenizer, tk.notes_to_score(prompt))
    ids = [int(i) for i in tk.bpe_encode(tokenizer, [base])[0]]
    end = float((prompt["onset_beats"] + prompt["duration_beats"]).max())
    shares = {}
    for realise in (True, False):
        cont = continuer(tokenizer, copy=True, realise_plans=realise)
        assert cont.realise_plans is realise
        g = cont.grammar
        seqs = cont.sample(
            [cont.bos, *ids], cont.genre_id("lofi"), end, end + 24, _programs(prompt), 3, 1.5,
            1.0, seed,
        )  # fmt: skip
        for s in seqs:
            assert tk.invalid_successions(g.base_ids([*ids, *s]), g.types, g.values) == 0
        bars, inside = _bars_against_plans(g, seqs)
        assert bars >= 6
        shares[realise] = inside / bars
    assert shares[True] >= 0.7 and shares[True] >= shares[False] + 0.5
