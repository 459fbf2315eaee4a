"""The continuation-against-reality measures on hand-made cases, the references, the default."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from midiml.evaluate import continuation as cm
from midiml.generate import continuation_eval as ce
from midiml.generate.continuation import default_choice


def notes(rows: list[tuple[int, float, float]], beat_s: float = 0.5) -> dict[str, np.ndarray]:
    """(pitch, onset_s, duration_s) rows at ``beat_s`` seconds a beat, as note columns."""
    a = np.array(rows, np.float64).reshape(-1, 3)
    n = len(a)
    return {
        "pitch": a[:, 0],
        "velocity": np.full(n, 80.0),
        "onset_s": a[:, 1],
        "duration_s": a[:, 2],
        "onset_beats": a[:, 1] / beat_s,
        "program": np.zeros(n, np.int64),
        "is_drum": np.zeros(n, bool),
    }


def riff_song(bars: int = 16) -> dict[str, np.ndarray]:
    """A two-bar riff with a chord on each bar's first beat, looped (120 qpm, 4/4)."""
    riff = [(48, 0.0, 1.0), (55, 0.0, 1.0), (60, 0.0, 0.25), (64, 0.5, 0.25), (67, 0.75, 0.5),
            (65, 1.25, 0.25), (45, 2.0, 1.0), (52, 2.0, 1.0), (69, 2.0, 0.5), (67, 2.75, 0.25),
            (64, 3.25, 0.5)]  # fmt: skip
    rows = [(p, o + 4.0 * k, d) for k in range(bars // 2) for p, o, d in riff]
    return notes(rows)


def test_a_copy_of_the_real_continuation_scores_one_except_novelty():
    prompt = notes([(60 + i % 3, i * 0.5, 0.4) for i in range(16)])
    real = notes([(62 + (i * 5) % 7, 8 + i * 0.25, 0.2) for i in range(24)])
    row = cm.continuation_row(prompt, dict(real), real)
    for m in (*cm.MEASURES, "score"):
        assert row[m] == pytest.approx(1.0)
    assert 0.0 < row["novelty"] <= 1.0  # new material, not a measure of likeness
    assert row["empty"] == 0.0


def test_an_empty_continuation_is_reported_with_score_zero_not_dropped():
    prompt = notes([(60 + i % 3, i * 0.5, 0.4) for i in range(16)])
    real = notes([(62, 8 + i * 0.5, 0.4) for i in range(8)])
    empty = {k: v[:0] for k, v in real.items()}
    row = cm.continuation_row(prompt, empty, real)
    assert row["score"] == 0.0 and row["empty"] == 1.0
    assert all(row[m] == 0.0 for m in cm.MEASURES)
    table = cm.continuation_table([prompt] * 2, [real] * 2, ["a", "b"], [4.0] * 2,
                                  {"mute": [[empty], [real]]})  # fmt: skip
    assert table["mute"]["all"]["n"] == 2  # both continuations are counted
    assert table["mute"]["a"]["score"] == 0.0 and table["mute"]["a"]["empty"] == 1.0
    assert table["mute"]["all"]["score"] == pytest.approx(0.5)


def test_each_measure_sees_what_it_should():
    real = notes([(60 + (i % 4) * 4, i * 0.5, 0.4) for i in range(16)])  # on the beat
    off = notes([(60 + (i % 4) * 4, i * 0.5 + 0.25, 0.4) for i in range(16)])  # off the beat
    assert cm.rhythm(off, real) == pytest.approx(0.0)
    up = {**real, "pitch": real["pitch"] + 6}
    assert cm.register(up, real) == pytest.approx(np.exp(-1.0))
    half = {k: v[::2] for k, v in real.items()}
    assert cm.density(half, real) == pytest.approx(0.5)
    chords = notes([(p, i * 0.5, 0.4) for i in range(8) for p in (60, 64, 67)])
    assert cm.texture(real, chords) == pytest.approx(1 / 3)
    tritone = {**real, "pitch": real["pitch"] + 1}  # every pitch class moved a semitone
    assert cm.harmony(tritone, real) < 0.5


def test_the_loop_reference_on_a_looped_song_scores_about_one():
    cut = ce.cut_song("riff", "lofi", "lofi", riff_song(), 4.0, prompt_bars=4, seconds=8.0)
    assert cut is not None and cut.cut_s == pytest.approx(8.0)
    loop = ce.loop_reference(cut)
    row = cm.continuation_row(ce.pitched(cut.prompt), loop, cut.real)
    assert row["score"] > 0.99
    assert row["novelty"] == pytest.approx(0.0)
    section = ce.next_section_reference(cut)
    assert cm.continuation_row(cut.prompt, section, cut.real)["score"] > 0.99
    floor = ce.random_floor(cut, seed=0)
    assert cm.continuation_row(cut.prompt, floor, cut.real)["score"] < row["score"]
    assert floor["pitch"].min() >= 45 and floor["pitch"].max() <= 69


def test_songs_are_taken_in_turn_from_the_listed_sources_and_cut_at_their_bar():
    songs, files, splits = [], [], []
    for i in range(6):
        fid, source = f"f{i}", ["own", "other"][i % 2]
        song = pd.DataFrame(riff_song(16)).assign(file_id=fid, track=0)
        songs.append(song)
        files.append({"file_id": fid, "source": source, "ts_numerator": 3, "ts_denominator": 4})
        splits.append({"file_id": fid, "genre": "lofi", "split": "test" if i < 5 else "train"})
    cuts = ce.held_out_cuts(pd.concat(songs), pd.DataFrame(splits), pd.DataFrame(files),
                            {"lofi": ["other", "own"]}, 4, 2, 6.0)  # fmt: skip
    assert len(cuts) == 4
    assert [c.source for c in cuts].count("other") == 2  # f1, f3 (f5 is a training song)
    assert all(c.bar == 3.0 and c.cut_beat == 6.0 for c in cuts)


class CopyCat:
    """A continuer that plays the prompt's last notes again (continue_notes only)."""

    def continue_notes(self, prompt, seconds, temperature=1.0, top_p=0.95, seed=0, genre=None):
        end = float(np.max(prompt["onset_s"] + prompt["duration_s"]))
        two = np.ones(2)
        return {"pitch": [60.0, 62.0], "velocity": 80 * two, "onset_s": [end, end + 0.5],
                "duration_s": 0.4 * two}  # fmt: skip


class SongModel(CopyCat):
    """A continuer of every instrument: its drums are left out of the comparison."""

    applies_guards = True  # its continue_song takes the guards

    def continue_song(self, prompt, seconds, temperature=1.0, top_p=0.95, seed=0, genre=None,
                      guards=None):  # fmt: skip
        self.seen = (genre, guards, bool(np.any(prompt["is_drum"])))
        return {"pitch": np.array([36.0, 60.0]), "velocity": np.array([90.0, 80.0]),
                "onset_s": np.array([8.0, 8.5]), "duration_s": np.array([0.1, 0.5]),
                "program": np.array([0, 0]), "is_drum": np.array([True, False])}  # fmt: skip


def test_the_runner_prefers_continue_song_and_drops_new_drums():
    song = riff_song()
    song["is_drum"][:3] = True
    cut = ce.cut_song("riff", "lofi", "lofi", song, 4.0, prompt_bars=4, seconds=8.0)
    model = SongModel()
    new = ce.continue_with(model, cut, 0, ce.NO_GUARDS)
    assert model.seen == ("lofi", ce.NO_GUARDS, True)
    assert list(new["pitch"]) == [60.0] and new["onset_beats"][0] == pytest.approx(17.0)
    assert len(ce.continue_with(CopyCat(), cut, 0, ce.NO_GUARDS)["pitch"]) == 2


class GuardlessSongModel(SongModel):
    """Like the token model: continue_song takes no guards, so none are passed."""

    applies_guards = False

    def continue_song(self, prompt, seconds, temperature=1.0, top_p=0.95, seed=0, genre=None):
        return super().continue_song(prompt, seconds, temperature, top_p, seed, genre)


class OwnBeatsModel(GuardlessSongModel):
    """Like the token model: it writes beats, and places them in seconds at the prompt's
    tempo (0.5 s a beat)."""

    def continue_song(self, prompt, seconds, temperature=1.0, top_p=0.95, seed=0, genre=None):
        beats = np.array([16.0, 17.0, 18.0])
        return {"pitch": np.array([60.0, 62.0, 64.0]), "velocity": np.full(3, 80.0),
                "onset_s": beats * 0.5, "duration_s": np.full(3, 0.4), "onset_beats": beats,
                "program": np.zeros(3), "is_drum": np.zeros(3, bool)}  # fmt: skip


def test_a_generators_beats_are_where_it_put_its_notes_not_the_songs_later_tempo():
    """The song slows to half speed after the cut (a performance's rubato) and a generator
    hears only the prompt: the token model's own beats are kept, and notes a generator gives
    in seconds are read on the prompt's clock, so on-beat notes stay on the beat."""
    song = riff_song()  # 120 qpm: 0.5 s a beat
    late = song["onset_s"] >= 8.0
    song["onset_s"] = np.where(late, 8.0 + (song["onset_s"] - 8.0) * 2.0, song["onset_s"])
    cut = ce.cut_song("slower", "classical", "classical", song, 4.0, prompt_bars=4, seconds=8.0)
    assert cut is not None and cut.cut_s == pytest.approx(8.0)
    assert cut.clock.beats(np.array([8.5]))[0] == pytest.approx(16.5)  # the song's later tempo
    own = ce.continue_with(OwnBeatsModel(), cut, 0, ce.NO_GUARDS)
    assert own["onset_beats"].tolist() == [16.0, 17.0, 18.0]
    in_seconds = ce.continue_with(CopyCat(), cut, 0, ce.NO_GUARDS)  # 0.5 s apart
    assert np.diff(in_seconds["onset_beats"])[0] == pytest.approx(1.0)
    on_beat = {**cut.real, "onset_beats": np.round(cut.real["onset_beats"])}
    assert cm.rhythm(own, on_beat) == pytest.approx(1.0)


def test_guards_reach_only_a_continuer_they_apply_to():
    cut = ce.cut_song("riff", "lofi", "lofi", riff_song(), 4.0, prompt_bars=4, seconds=8.0)
    model = GuardlessSongModel()
    assert not ce.guards_apply(model)
    assert list(ce.continue_with(model, cut, 0, ce.NO_GUARDS)["pitch"]) == [60.0]
    assert model.seen == ("lofi", None, False)


def test_the_default_is_the_best_learned_row_and_the_cli_reads_it(tmp_path):
    table = {n: {"all": {"score": s}} for n, s in
             {"loop": 0.9, "a/guards": 0.6, "a/free": 0.7, "b": 0.65}.items()}  # fmt: skip
    rows = {"loop": {"kind": "reference", "model": None, "guards": None},
            "a/guards": {"kind": "generator", "model": "a", "guards": True},
            "a/free": {"kind": "generator", "model": "a", "guards": False},
            "b": {"kind": "generator", "model": "b", "guards": False}}  # fmt: skip
    choice = cm.choose_default(table, rows)
    assert choice == {"row": "a/free", "model": "a", "guards": False, "score": 0.7}
    # a guarded row never qualifies, however high, nor one that replays the prompt's rhythm
    table["w/guards"] = table["w/free"] = {"all": {"score": 0.8}}
    rows["w/guards"] = {"kind": "generator", "model": "w", "guards": True, "own_rhythm": False}
    rows["w/free"] = {"kind": "generator", "model": "w", "guards": False, "own_rhythm": False}
    rows["a/free"]["own_rhythm"] = False
    assert cm.choose_default(table, rows)["row"] == "b"
    table["a/guards"]["all"]["score"] = 0.95
    assert cm.choose_default(table, rows)["row"] == "b"
    models = tmp_path / "models" / "generators"
    models.mkdir(parents=True)
    assert default_choice(models) == ("markov", True)  # no evaluation yet: the fallback
    (tmp_path / "models" / "default_generator.json").write_text(json.dumps(choice))
    assert default_choice(models) == ("a", False)


class Refuser:
    """A saved continuer (found through meta.json like the VAE) that refuses odd prompts and has
    no guards: it gets one row, and its refusals are counted as empty continuations."""

    @classmethod
    def load(cls, model_dir, guards=None, top_k=0):
        return cls()

    def continue_notes(self, prompt, seconds, temperature=1.0, top_p=0.95, seed=0, genre=None):
        if seed % 2:
            raise ValueError("no")
        return CopyCat().continue_notes(prompt, seconds)


def test_every_row_runs_and_a_refusal_is_an_empty_continuation(tmp_path):
    models = tmp_path / "generators"
    (models / "refuser").mkdir(parents=True)
    meta = {"name": "refuser", "continuer": "tests.test_continuation_eval.Refuser"}
    (models / "refuser" / "meta.json").write_text(json.dumps(meta))
    cut = ce.cut_song("riff", "lofi", "lofi", riff_song(), 4.0, prompt_bars=4, seconds=8.0)
    samples, rows, seconds = ce.run_rows([cut], models, ["refuser"], seeds=[0, 1])
    assert set(samples) == {"loop", "next_section", "random", "refuser"}
    assert rows["refuser"] == {"kind": "generator", "model": "refuser", "guards": False,
                               "own_rhythm": True, "failed": 1}  # fmt: skip
    assert [len(s["pitch"]) for s in samples["refuser"][0]] == [2, 0]
    assert seconds["refuser"]["cpu"] >= 0
    table = cm.continuation_table([ce.pitched(cut.prompt)], [cut.real], ["lofi"], [8.0], samples)
    assert table["refuser"]["lofi"]["empty"] == 0.5 and table["refuser"]["all"]["n"] == 2
