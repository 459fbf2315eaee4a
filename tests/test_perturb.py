"""Re-encodings keep the notes and the label of a song; genre models ignore file artifacts."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from midiml.classify.pipelines import feature_columns
from midiml.data.midi import NOTE_COLUMNS, parse_midi
from midiml.represent.features import ARTIFACT_FEATURES, ROBUST_FEATURES, extract_features
from midiml.represent.perturb import PERTURBATIONS, perturb_songs, random_reencoding
from tests.conftest import write_midi


@pytest.fixture(scope="module")
def song(tmp_path_factory):
    """A two-bar chord-and-melody song written with mido, parsed as the ingest parses it."""
    notes = []
    for bar in range(8):
        for p in (48, 55, 64, 71):  # a maj7 chord held a bar
            notes.append((p + (bar % 2) * 5, bar * 4, 4))
        for i, p in enumerate((72, 74, 76, 79)):
            notes.append((p, bar * 4 + i, 1))
    path = write_midi(tmp_path_factory.mktemp("p") / "song.mid", notes, tempo=600_000)
    parsed = parse_midi(path, "g/song.mid")
    files = pd.DataFrame([{"file_id": "g/song.mid", "genre": "g", "status": "ok", **parsed.info}])
    return parsed.notes, files


@pytest.mark.parametrize("name", sorted(PERTURBATIONS))
def test_perturbation_keeps_notes_consistent(song, name):
    notes, files = song
    info = files.iloc[0].to_dict()
    out, new_info = PERTURBATIONS[name](notes, info, np.random.default_rng(0))
    assert list(out.columns) == list(notes.columns)
    assert all(str(out[c].dtype) == str(notes[c].dtype) for c in NOTE_COLUMNS if c != "file_id")
    assert len(out) > 0
    assert (out["onset_s"] >= 0).all() and (out["onset_beats"] >= 0).all()
    assert (out["duration_s"] > 0).all()
    assert out["pitch"].between(0, 127).all() and out["velocity"].between(1, 127).all()
    assert set(out["file_id"].astype(str)) == {"g/song.mid"}
    assert out["onset_s"].is_monotonic_increasing
    if name not in ("crop", "loop"):
        assert len(out) == len(notes)
    if name == "transpose":
        shift = set((out["pitch"].to_numpy() - notes["pitch"].to_numpy()) % 12)
        assert len(shift) == 1 and shift != {0}
    if name == "loop":
        assert len(out) % len(notes) == 0 and new_info["length_s"] >= 20
    if name == "flatten_tempo":
        assert np.allclose(out["onset_beats"], out["onset_s"] * 2)
        assert new_info["n_tempo_changes"] == 0
    if name == "merge_tracks":
        assert new_info["n_tracks"] == 1 and out["track"].nunique() == 1


def test_crop_is_an_excerpt_of_8_to_60_seconds(song):
    notes, files = song
    long = pd.concat([notes.assign(onset_s=notes["onset_s"] + 20 * i) for i in range(6)])
    info = dict(files.iloc[0].to_dict(), length_s=float(long["onset_s"].max() + 2))
    for seed in range(5):
        out, new_info = PERTURBATIONS["crop"](long, info, np.random.default_rng(seed))
        assert 8 <= new_info["length_s"] <= 60
        assert out["onset_s"].min() == 0 and out["onset_s"].max() < new_info["length_s"]


def test_perturbed_songs_keep_their_label_and_are_seeded(song):
    notes, files = song
    a_notes, a_files = perturb_songs(notes, files, ["g/song.mid"], seed=3, suffix="#a")
    b_notes, _ = perturb_songs(notes, files, ["g/song.mid"], seed=3, suffix="#a")
    pd.testing.assert_frame_equal(a_notes, b_notes)
    assert list(a_files["file_id"]) == ["g/song.mid#a"]
    feats = extract_features(a_notes, a_files.assign(genre="g"))
    assert feats["genre"].tolist() == ["g"]
    _, _, done = random_reencoding(notes, files.iloc[0].to_dict(), np.random.default_rng(1), p=1)
    assert "merge_tracks" in done and "split_hands" not in done


def test_robust_features_move_little_under_reencoding(song):
    """Key-free, seconds-based descriptors: transposing (register aside), flattening the tempo
    map or changing the track layout changes nothing."""
    notes, files = song
    base = extract_features(notes, files)
    info = files.iloc[0].to_dict()
    for name in ("transpose", "flatten_tempo", "merge_tracks", "split_hands"):
        out, new_info = PERTURBATIONS[name](notes, info, np.random.default_rng(0))
        new = extract_features(out, pd.DataFrame([new_info]))
        register = ("m_bass_mean", "m_top_mean") if name == "transpose" else ()
        m_cols = [c for c in ROBUST_FEATURES if c.startswith("m_") and c not in register]
        assert np.allclose(base[m_cols], new[m_cols], atol=1e-6), name


def test_genre_features_exclude_artifacts_and_ignore_n_tracks():
    """A classifier on the robust set cannot use n_tracks, even where it would separate the
    genres perfectly (as it does between the project's sources)."""
    from sklearn.ensemble import RandomForestClassifier

    rng = np.random.default_rng(0)
    n = 200
    genre = np.array(["a", "b"] * (n // 2))
    cols_all = [*ROBUST_FEATURES, *ARTIFACT_FEATURES]
    table = pd.DataFrame(rng.normal(size=(n, len(cols_all))), columns=cols_all)
    table.insert(0, "genre", genre)
    table.insert(0, "file_id", [f"f{i}" for i in range(n)])
    table["m_chord_seventh"] += (genre == "a") * 0.5  # a weak musical signal
    table["n_tracks"] = np.where(genre == "a", 2.0, 12.0)  # a perfect artifact
    cols = feature_columns(table, "robust")
    assert not set(cols) & set(ARTIFACT_FEATURES)
    assert "n_tracks" in feature_columns(table, "all")
    clf = RandomForestClassifier(50, random_state=0).fit(table[cols], genre)
    altered = table.assign(n_tracks=rng.permutation(table["n_tracks"].to_numpy()))
    assert (clf.predict(table[cols]) == clf.predict(altered[cols])).all()


def test_default_config_serves_the_robust_feature_set():
    from midiml.config import load_params

    params = load_params()
    assert params.classifier.feature_set == "robust"


def test_novelty_flags_a_song_unlike_all_training_songs():
    from midiml.classify.pipelines import Novelty

    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 5))
    nov = Novelty.fit(X)
    assert np.quantile(nov.score(X[:50]), 0.5) < 1.0
    assert nov.score(np.full((1, 5), 8.0))[0] > 1.0


def test_add_melody_lays_a_repeating_single_note_line_in_the_songs_scale(song):
    from midiml.represent.perturb import add_melody

    notes, files = song
    chords = notes[notes["pitch"] < 72].reset_index(drop=True)  # the held chords alone, a loop
    info = files.iloc[0].to_dict()
    out, new_info = add_melody(chords, info, np.random.default_rng(1), reharmonize_p=0.0)
    assert list(out.columns) == list(chords.columns)
    assert all(str(out[c].dtype) == str(chords[c].dtype) for c in NOTE_COLUMNS if c != "file_id")
    melody = out[out["track"] == out["track"].max()]
    assert len(out) == len(chords) + len(melody) and len(melody) >= 8
    assert new_info["n_tracks"] == int(info["n_tracks"]) + 1
    assert out["onset_s"].is_monotonic_increasing and (melody["duration_s"] > 0).all()
    # a melody: one note at a time, in the loop's scale, a chord tone on every beat
    assert not melody["onset_beats"].duplicated().any()
    assert set(melody["pitch"] % 12) <= set(chords["pitch"] % 12)
    for row in melody[np.isclose(melody["onset_beats"] % 1, 0)].itertuples():
        under = chords[
            (chords["onset_beats"] <= row.onset_beats + 1e-6)
            & (chords["onset_beats"] + chords["duration_beats"] > row.onset_beats + 1e-6)
        ]
        assert row.pitch % 12 in set(under["pitch"] % 12)
    # beats and seconds agree with the song's own tempo (600000 us per quarter: 0.6 s)
    assert np.allclose(melody["onset_s"], melody["onset_beats"] * 0.6, atol=1e-6)
    before = extract_features(chords.assign(file_id="g/song.mid"), files)
    after = extract_features(out.assign(file_id="g/song.mid"), files)
    assert before["interval_up_frac"].iloc[0] == 0 and after["interval_up_frac"].iloc[0] > 0


def test_reharmonize_moves_whole_bars_and_keeps_their_chords(song):
    from midiml.represent.perturb import reharmonize

    notes, files = song
    info = files.iloc[0].to_dict()
    out, _ = reharmonize(notes, info, np.random.default_rng(3))
    assert len(out) == len(notes) and out["pitch"].between(0, 127).all()
    key = ["onset_beats", "track", "duration_beats"]
    a = notes.sort_values([*key, "pitch"], ignore_index=True)
    b = out.sort_values(key, kind="stable", ignore_index=True)
    b = b.groupby(key, sort=False, group_keys=False).apply(lambda g: g.sort_values("pitch"))
    b = b.reset_index(drop=True)
    moved = b["pitch"].to_numpy(int) - a["pitch"].to_numpy(int)
    bars = np.floor(a["onset_beats"].to_numpy() / 4).astype(int)
    per_bar = {bar: set(moved[bars == bar]) for bar in np.unique(bars)}
    assert per_bar[0] == {0}  # the first bar stays where it was
    assert all(len(v) == 1 for v in per_bar.values())  # a bar moves as a whole: same chords
    assert len({next(iter(v)) for v in per_bar.values()}) > 1  # a new progression
    assert set(out["pitch"] % 12) != set(notes["pitch"] % 12)  # other pitch classes


def _chord_loops_of_two_genres(song):
    """(params, files, notes) of the song's held chords as a loop of genre g and of genre h."""
    from omegaconf import OmegaConf

    notes, files = song
    chords = notes[notes["pitch"] < 72].reset_index(drop=True)
    two = pd.concat([chords, chords.assign(file_id="h/other.mid")], ignore_index=True).astype(
        {"file_id": "string"}
    )
    files2 = pd.concat([files, files.assign(file_id="h/other.mid", genre="h")], ignore_index=True)
    return OmegaConf.create({"seed": 0, "features": {}}), files2, two


def test_copies_get_melodies_only_for_the_asked_genre(song):
    from midiml.classify.tables import copies_table

    params, files2, two = _chord_loops_of_two_genres(song)
    ids = ["h/other.mid", "g/song.mid"]  # h first: its random draws come before g's melody
    plain = copies_table(params, ids, files2, two, {"default": 3})
    sung = copies_table(params, ids, files2, two, {"default": 3}, {"g": 1.0})
    assert len(plain) == len(sung) == 6
    g_rows = sung["file_id"].str.startswith("g/").to_numpy()
    # same re-encodings (same seeds); only genre g's copies carry a melody on top
    pd.testing.assert_frame_equal(sung[~g_rows], plain[~g_rows])
    assert (sung.loc[g_rows, "log_n_notes"] > plain.loc[g_rows, "log_n_notes"]).all()
    assert (sung.loc[g_rows, "interval_up_frac"] > 0).all()


def test_excerpt_copies_of_every_long_enough_song(song):
    from omegaconf import OmegaConf

    from midiml.classify.tables import copies_table

    notes, files = song  # one 19.2 s song
    short = notes[notes["onset_s"] < 4.0].assign(file_id="h/short.mid")
    both = pd.concat([notes, short], ignore_index=True).astype({"file_id": "string"})
    files2 = pd.concat(
        [files, files.assign(file_id="h/short.mid", genre="h", length_s=4.8)], ignore_index=True
    )
    params = OmegaConf.create({"seed": 0, "features": {}})
    ids = ["g/song.mid", "h/short.mid"]
    excerpts = {"copies": 2, "min_s": 8.0, "max_s": 12.0}
    table = copies_table(params, ids, files2, both, {"default": 0}, None, excerpts)
    # the long song gets two excerpts of 8-12 s; the song shorter than 8 s gets none
    assert sorted(table["file_id"]) == ["g/song.mid#excerpt0", "g/song.mid#excerpt1"]
    assert (table["genre"] == "g").all()
    assert table["log_length_s"].between(np.log1p(8.0), np.log1p(12.0)).all()
    assert (table["log_n_notes"] < np.log1p(len(notes))).all()
    again = copies_table(params, ids, files2, both, {"default": 0}, None, excerpts)
    pd.testing.assert_frame_equal(table, again)  # seeded: the same excerpts every run
    whole = copies_table(params, ids, files2, both, {"default": 1})
    assert not whole["file_id"].str.contains("#excerpt").any()  # no excerpts unless asked


@pytest.mark.parametrize("texture", ["broken", "comp", "walk", "comp+walk"])
def test_retexture_plays_the_same_chords_in_another_texture(song, texture):
    from midiml.represent.perturb import retexture

    notes, files = song
    chords = notes[notes["pitch"] < 72].reset_index(drop=True)  # held chords alone, a loop
    info = files.iloc[0].to_dict()
    out, new_info = retexture(chords, info, np.random.default_rng(2), texture, swing=False)
    assert list(out.columns) == list(chords.columns)
    assert all(str(out[c].dtype) == str(chords[c].dtype) for c in NOTE_COLUMNS if c != "file_id")
    assert out["onset_s"].is_monotonic_increasing and (out["duration_s"] > 0).all()
    assert out["velocity"].between(1, 127).all() and new_info["n_notes"] == len(out)
    assert new_info["n_tracks"] == out["track"].nunique()
    # the song's own clock (0.6 s a beat) and length; no note outside the loop
    assert np.allclose(out["onset_s"], out["onset_beats"] * 0.6, atol=1e-6)
    assert out["onset_beats"].max() < chords["onset_beats"].max() + 4
    # every bar sounds its own chord's pitch classes (a walking bass adds one passing tone)
    for bar in range(8):
        was = set(chords.loc[chords["onset_beats"] // 4 == bar, "pitch"] % 12)
        now = out.loc[out["onset_beats"] // 4 == bar, "pitch"] % 12
        foreign = set(now) - was
        assert len(foreign) <= (1 if "walk" in texture else 0)
    starts = out.groupby("onset_beats").size()
    if texture == "broken":  # one tone at a time, in eighths
        assert (starts == 1).all() and len(out) == 8 * 8
    if texture == "comp":  # the chord struck again within its bar
        assert len(starts) > len(chords.groupby("onset_beats"))
    if "walk" in texture:  # a bass a track of its own, on every beat, an octave down
        bass = out[out["track"] == out["track"].max()]
        assert len(bass) == 8 * 4
        downbeats = bass[bass["onset_beats"] % 4 == 0].sort_values("onset_beats")
        lowest = chords.groupby("onset_beats")["pitch"].min().sort_index()
        assert (downbeats["pitch"].to_numpy() == lowest.to_numpy() - 12).all()
    swung, _ = retexture(chords, info, np.random.default_rng(2), texture, swing=True)
    offbeat = swung["onset_beats"] % 1
    assert not np.isclose(offbeat, 0.5).any()  # off-beat eighths moved to the triplet
    assert np.isclose(offbeat, 2 / 3).any() == (texture != "walk")


def test_copies_get_textures_only_for_the_asked_genre(song):
    from midiml.classify.tables import copies_table

    params, files2, two = _chord_loops_of_two_genres(song)
    ids = ["h/other.mid", "g/song.mid"]
    plain = copies_table(params, ids, files2, two, {"default": 2})
    styled = copies_table(params, ids, files2, two, {"default": 2}, texture={"g": 1.0})
    g_rows = styled["file_id"].str.startswith("g/").to_numpy()
    pd.testing.assert_frame_equal(styled[~g_rows], plain[~g_rows])
    assert (styled.loc[g_rows, "chord_onset_frac"] < plain.loc[g_rows, "chord_onset_frac"]).all()
