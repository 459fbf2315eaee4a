"""Musical words: what they say of hand-made songs, that re-encodings read the same, and the
vote-and-words blend (its probabilities, its refit, and the pipeline that trains it)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.dummy import DummyClassifier
from sklearn.frozen import FrozenEstimator
from sklearn.linear_model import LogisticRegression

from midiml.classify.importance import fresh_estimator
from midiml.classify.served import VOTE_AND_WORDS, WORDS, candidates, members, unfrozen
from midiml.classify.words_model import model_input, words_classifier
from midiml.represent.features import WORDS_COLUMN, extract_features
from midiml.represent.words import LINE_BREAK, N_LINES, ngrams, song_words


def _song(notes: list[tuple[int, float, float]], seconds_per_beat: float = 0.5) -> pd.DataFrame:
    """(pitch, start beat, beats) -> a notes frame in seconds."""
    return pd.DataFrame(
        {
            "pitch": [p for p, _, _ in notes],
            "onset_s": [s * seconds_per_beat for _, s, _ in notes],
            "duration_s": [d * seconds_per_beat for _, _, d in notes],
        }
    )


def _cadence_with_tune(transpose: int = 0) -> list[tuple[int, float, float]]:
    """I - IV - V7 - I in C (two beats each) under a tune of quarter notes."""
    chords = [(48, 52, 55), (53, 57, 60), (55, 59, 62, 65), (48, 52, 55)]
    tune = [64, 65, 67, 69, 71, 72, 74, 72]
    out = [(p + transpose, 2.0 * i, 2.0) for i, c in enumerate(chords) for p in c]
    return out + [(p + transpose, 1.0 * i, 1.0) for i, p in enumerate(tune)]


def test_words_of_a_cadence_name_its_degrees_steps_and_textures():
    words = song_words(_song(_cadence_with_tune()), 0).split(LINE_BREAK)
    melody, bass, texture, voicing, articulation, harmony = words
    # the tune's second note onward: steps up 2,2,2,1,2,-2 in even quarters (rhythm 0)
    assert melody.split() == ["m2r0", "m2r0", "m2r0", "m1r0", "m2r0", "m-2r0"]
    assert set(texture.split()) == {"s1", "s4"}  # a lone tune note, or chord + tune note
    assert harmony.split() == ["h0maj", "h5maj", "h7dom7", "h0maj"]
    # each chord with the tune note on top, as intervals above its bass (mod 12)
    assert voicing.split() == ["v4-7", "v2-4-7", "v4-7-10", "v2-4-7"]
    # the lowest *struck* note: the chord's bass, then the tune note struck alone, and back
    assert bass.split() == ["b-12", "b12"] * 3
    # a chord held two beats over the tune's next onset a beat later (2 log2 2), then a tune
    # note held up to the next onset
    assert articulation.split() == ["a2", "a0"] * 3 + ["a2"]


def test_articulation_tells_staccato_from_legato_at_any_tempo():
    def articulation(beats_held: float, seconds_per_beat: float) -> list[str]:
        tune = [(60 + i, float(i), beats_held) for i in range(8)]
        return song_words(_song(tune, seconds_per_beat), 0).split(LINE_BREAK)[4].split()

    assert articulation(0.25, 0.5) == ["a-4"] * 7  # sixteenth notes: a quarter of each gap
    assert articulation(0.5, 0.5) == ["a-2"] * 7
    assert articulation(1.0, 0.5) == ["a0"] * 7
    for beats in (0.25, 0.5, 1.0):
        assert articulation(beats, 0.9) == articulation(beats, 0.5)


def test_words_do_not_change_with_key_or_tempo():
    plain = song_words(_song(_cadence_with_tune()), key_tonic=0)
    in_d_slower = song_words(_song(_cadence_with_tune(2), seconds_per_beat=1.0), key_tonic=2)
    assert in_d_slower == plain
    # at other tempi the half-second windows straddle chord changes: the harmony line may
    # gain a passing chord there, the other lines stay
    odd = song_words(_song(_cadence_with_tune(), seconds_per_beat=0.8), 0).split(LINE_BREAK)
    assert odd[:-1] == plain.split(LINE_BREAK)[:-1]


def test_a_tiny_song_has_empty_lines():
    assert song_words(_song([(60, 0, 1), (62, 1, 1)]), 0) == LINE_BREAK.join([""] * N_LINES)


def test_ngrams_stay_within_a_line():
    grams = ngrams(f"a b c{LINE_BREAK}d e", n_max=2)
    assert sorted(grams) == sorted(["a", "b", "c", "a b", "b c", "d", "e", "d e"])
    assert not any("c d" in g for g in grams)


def test_feature_table_ends_with_the_words():
    notes = _song(_cadence_with_tune()).assign(
        file_id="s", track=0, program=0, is_drum=False, velocity=80, genre="g"
    )
    notes["onset_beats"] = notes["onset_s"] / 0.5
    notes["duration_beats"] = notes["duration_s"] / 0.5
    files = pd.DataFrame(
        [
            {
                "file_id": "s",
                "genre": "g",
                "ts_numerator": 4,
                "ts_denominator": 4,
                "n_timesig_changes": 0,
                "qpm_mean": 120.0,
                "qpm_std": 0.0,
                "n_tempo_changes": 0,
                "length_s": 8.0,
                "n_tracks": 1,
            }
        ]
    )
    table = extract_features(notes, files)
    assert table.columns[-1] == WORDS_COLUMN
    assert "h7dom7" in table[WORDS_COLUMN].iloc[0]
    assert model_input(table, ["pitch_mean", WORDS_COLUMN]).dtype == object
    assert model_input(table, ["pitch_mean"]).dtype == np.float64
    with pytest.raises(ValueError, match="last column"):
        model_input(table, [WORDS_COLUMN, "pitch_mean"])


def _idiom_songs(rng: np.random.Generator, n: int) -> tuple[list[str], np.ndarray]:
    """Two made-up genres with the same steps in the same amounts, in another order:
    ``zigzag`` alternates a step up and a step down, ``terraces`` takes two of each in a
    row, so every summary (step sizes, direction shares) is alike and only the order tells
    them apart."""
    docs, labels = [], []
    for i in range(n):
        genre = "zigzag" if i % 2 else "terraces"
        figure = ["m2r0", "m-2r0"] if genre == "zigzag" else ["m2r0", "m2r0", "m-2r0", "m-2r0"]
        start = int(rng.integers(0, 4))
        steps = (figure * 12)[start : start + 20]
        docs.append(LINE_BREAK.join([" ".join(steps), "", "", ""]))
        labels.append(genre)
    return docs, np.array(labels, dtype=object)


def test_words_model_learns_the_order_of_figures():
    rng = np.random.default_rng(0)
    docs, y = _idiom_songs(rng, 40)
    model = words_classifier(min_df=1).fit(docs, y)
    new_docs, new_y = _idiom_songs(np.random.default_rng(1), 20)
    assert (model.predict(new_docs) == new_y).mean() == 1.0


def _blend_data(n: int = 40):
    rng = np.random.default_rng(3)
    docs, y = _idiom_songs(rng, n)
    numbers = rng.normal(size=(n, 2))  # no signal: the music half cannot tell them apart
    X = np.column_stack([numbers.astype(object), np.array(docs, dtype=object)])
    return X, y


def _blend(music: dict, words, weight: float):
    """The served blend (``served.candidates``) of ``music`` (name -> model) and ``words``,
    unfitted: every member refitted when it is fitted."""
    tree = candidates(music, words=words, vote=list(music), words_weight=weight)
    return unfrozen(tree[VOTE_AND_WORDS])


def test_blend_is_the_weighted_mean_of_its_two_models():
    X, y = _blend_data()
    music = {"a": DummyClassifier(strategy="prior"), "b": DummyClassifier(strategy="uniform")}
    for weight in (0.0, 0.3, 1.0):
        blend = _blend(music, words_classifier(min_df=1), weight).fit(X, y)
        fitted = members(blend)
        p_music = np.mean([fitted[m].predict_proba(X) for m in music], axis=0)
        p_words = fitted[WORDS].model_.predict_proba(X[:, -1].astype(str))
        np.testing.assert_allclose(
            blend.predict_proba(X), (1 - weight) * p_music + weight * p_words
        )
    assert (blend.predict(X) == y).mean() == 1.0  # weight 1: the words alone decide
    # the words' answer is kept between calls: new words are still read afresh
    flipped = X.copy()
    flipped[:, -1] = X[::-1, -1]
    np.testing.assert_allclose(
        blend.predict_proba(flipped),
        fitted[WORDS].model_.predict_proba(flipped[:, -1].astype(str)),
    )
    # ... and each song's words are read once, also in a batch that repeats songs
    repeated = np.concatenate([X, flipped, X[:0]])
    words = fitted[WORDS]
    np.testing.assert_array_equal(
        words.predict_proba(repeated), words.model_.predict_proba(repeated[:, -1].astype(str))
    )
    assert "_memo" not in words.__getstate__()  # a saved model keeps none of it
    assert (_blend(music, words_classifier(min_df=1), 0.0).fit(X, y).predict(X) == y).mean() < 1


def test_blend_keeps_a_frozen_music_model_and_refits_it_when_fresh():
    X, y = _blend_data()
    music = LogisticRegression().fit(
        np.ones((4, 2)) * [[0], [0], [1], [1]], ["terraces"] * 2 + ["zigzag"] * 2
    )
    coef = music.coef_.copy()
    words = words_classifier(min_df=1).fit(X[:, -1].astype(str), y)
    tree = candidates({"a": music, "b": music}, words=words, vote=["a", "b"])[VOTE_AND_WORDS]
    blend = tree.fit(X, y)
    np.testing.assert_array_equal(members(blend)["a"].model_.estimator.coef_, coef)  # frozen

    class Fitted:  # what fresh_estimator reads of a served model
        pipeline = blend

    fresh = members(fresh_estimator(Fitted()).fit(X, y))
    assert not isinstance(fresh["a"].model_, FrozenEstimator)
    assert not np.array_equal(fresh["a"].model_.coef_, coef)  # refitted on the new songs
    assert fresh_estimator(Fitted()).estimator.weights == [0.5, 0.5]


@pytest.fixture(scope="module")
def blend_run(tmp_path_factory):
    """train_all with two models, their vote and ``classifier.words`` on two genres of hand-made
    songs (two sources each): (params, files, notes, table, manifest, model folder)."""
    from midiml.classify.train_all import train_all
    from tests.conftest import classifier_models
    from tests.test_robust_serving import robust_params, two_genre_songs

    root = tmp_path_factory.mktemp("blend")
    files, notes, table = two_genre_songs(root)
    params = robust_params(
        models=classifier_models(logreg={"C": [1.0]}, random_forest={"n_estimators": [20]}),
        vote=["logreg", "random_forest"],
        words={
            "tasks": ["genre"],
            "weight": 0.5,
            "estimator": {"_target_": "midiml.classify.words_model.words_classifier", "min_df": 1},
        },
        serve_model="auto_held_out_source",
    )
    manifest = train_all(
        params, files, files[["file_id", "genre", "split"]], table, notes, root, log=lambda *_: 0
    )
    return params, files, notes, table, manifest, root


def test_pipeline_trains_and_serves_the_blend(blend_run):
    """train_all with a vote and ``classifier.words``: the blend is a model of the manifest
    with held-out-source scores; it reads the words of the feature table and of re-encoded
    copies, and its robustness section (re-encoded, held-out source, importance) is computed."""
    from midiml.classify.pipelines import VOTE_AND_WORDS, build_task, load_model
    from midiml.classify.robustness import evaluate_robustness

    params, files, notes, table, manifest, root = blend_run
    entry = manifest["tasks"]["genre"]["models"][VOTE_AND_WORDS]
    assert entry["cv_macro_f1"] is None
    assert set(entry["held_out_source"]) == {"loops_a", "loops_b", "runs_a", "runs_b"}
    fitted = load_model(root / entry["file"])
    assert fitted.columns[-1] == WORDS_COLUMN and WORDS_COLUMN not in fitted.numeric_columns
    task = build_task("genre", files, files[["file_id", "genre", "split"]], params.classifier)
    test = table.set_index("file_id").loc[task.ids("test")]
    assert (fitted.predict(model_input(test, fitted.columns)) == task.y("test")).all()
    rob = evaluate_robustness(params, fitted, task, files, table, notes, None, {}, n_jobs=1)
    assert set(rob["held_out_source"]) == {"loops_a", "loops_b", "runs_a", "runs_b"}
    assert all(0 <= v["accuracy"] <= 1 for v in rob["reencoded"].values())
    assert (
        WORDS_COLUMN in [f["feature"] for f in rob["importance"]["served"]]
        or len(rob["importance"]["served"]) == 10
    )


def test_held_out_refits_by_leaf_match_whole_refits_and_are_shared(blend_run):
    """Held-out-source refits go leaf by leaf: the vote's are its members' (already refitted
    for the members themselves), the blend adds one words refit per source, and the result
    is what refitting the whole blend gives, its rows weighed by source as it was trained."""
    from midiml.classify.pipelines import VOTE, VOTE_AND_WORDS, build_task, load_model
    from midiml.classify.robustness import held_out_source_predictions
    from midiml.classify.source_weighting import fit_weighted, training_weights

    params, files, _, table, manifest, root = blend_run
    models = manifest["tasks"]["genre"]["models"]
    task = build_task("genre", files, files[["file_id", "genre", "split"]], params.classifier)
    ids, source = task.ids("train"), files.set_index("file_id")["source"]

    def held_out(model: str, refits: dict) -> dict:
        fitted = load_model(root / models[model]["file"])
        return held_out_source_predictions(fitted, table, ids, task.labels, source, refits=refits)

    refits: dict = {}
    for member in ("logreg", "random_forest"):
        held_out(member, refits)
    n_members = len(refits)
    assert n_members == 2 * 4  # two models, four sources
    held_out(VOTE, refits)
    assert len(refits) == n_members  # nothing new to refit
    blended = held_out(VOTE_AND_WORDS, refits)
    assert len(refits) == n_members + 4  # one words model per source

    blend = load_model(root / models[VOTE_AND_WORDS]["file"])
    t = table.set_index("file_id")
    src = source.loc[ids]
    for held in ("loops_a", "runs_b"):
        train, test = list(src.index[src != held]), src.index[src == held]
        weights = training_weights(train, task.labels, None, source, blend.source_power)
        assert weights is not None  # weighed as trained (balanced sources here: all ones)
        whole = fit_weighted(
            fresh_estimator(blend),
            model_input(t.loc[train], blend.columns),
            task.labels.loc[train].to_numpy(object),
            weights,
        )
        assert list(whole.classes_) == list(blend.classes)
        proba = whole.predict_proba(model_input(t.loc[test], blend.columns))
        np.testing.assert_allclose(blended[held][0], proba, rtol=0, atol=1e-12)


def test_importance_of_a_blend_is_scikit_learns():
    """Permutation importance predicts its shuffled copies in batches, but shuffles as
    scikit-learn's ``permutation_importance`` does: the same drops, whatever the batch size,
    and the served blend's table of top features."""
    from sklearn.inspection import permutation_importance

    from midiml.classify.importance import permutation_drops, top_features

    X, y = _blend_data()
    music = {"a": LogisticRegression(), "b": LogisticRegression(C=0.1)}
    blend = _blend(music, words_classifier(min_df=1), 0.5).fit(X, y)
    columns = ["a", "b", WORDS_COLUMN]
    theirs = permutation_importance(blend, X, y, scoring="accuracy", n_repeats=3, random_state=0)
    for batch_rows in (1, len(X) * 2, 10**6):
        drops = permutation_drops(blend, X, y, seed=0, n_repeats=3, batch_rows=batch_rows)
        np.testing.assert_array_equal(drops, theirs.importances)
    serial = top_features(blend, X, y, columns, seed=0, top=3)
    assert serial[0]["feature"] == WORDS_COLUMN  # only the words tell the genres apart
