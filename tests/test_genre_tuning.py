"""The genre tuning tool (benchmarks/genre_tuning.py): cache, words overrides, leaf names,
prior, blend ceiling, more songs."""

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf
from sklearn.calibration import CalibratedClassifierCV
from sklearn.dummy import DummyClassifier
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from midiml.classify.words_model import MusicAndWords
from tests.conftest import load_script


def _tool():
    return load_script("benchmarks/genre_tuning.py")


def test_cache_reuses_a_value_for_the_same_inputs_only(tmp_path, monkeypatch):
    tool = _tool()
    monkeypatch.setattr(tool, "CACHE", tmp_path / "tuning")
    calls = []

    def make(value):
        def inner():
            calls.append(value)
            return {"value": value}

        return inner

    assert tool.cached("rows", {"copies": 1}, make(1)) == {"value": 1}
    assert tool.cached("rows", {"copies": 1}, make(2)) == {"value": 1}  # from the cache
    assert tool.cached("rows", {"copies": 2}, make(3)) == {"value": 3}  # other inputs
    assert calls == [1, 3]
    assert len(list((tmp_path / "tuning").glob("rows-*.pkl"))) == 2


def test_words_overrides_reach_the_blend_only():
    tool = _tool()
    blend = MusicAndWords(DummyClassifier(), DummyClassifier(), 0.5)
    words_cfg = OmegaConf.create(
        {
            "weight": 0.3,
            "estimator": {
                "_target_": "midiml.classify.words_model.words_classifier",
                "C": 30.0,
                "ngram_max": 4,
            },
        }
    )
    changed = tool.with_words(blend, words_cfg)
    assert changed.weight == 0.3 and blend.weight == 0.5
    assert changed.music is blend.music  # the feature vote stays as trained
    # the words model is the overridden one, not the served one: an override of its
    # estimator was once silently ignored
    assert changed.words.get_params()["clf__C"] == 30.0
    assert changed.words.get_params()["tfidf__analyzer"].keywords == {"n_max": 4}
    single = DummyClassifier()
    assert tool.with_words(single, words_cfg) is single  # a model without words is left alone


def test_feature_set_override_reaches_the_columns():
    """``classifier.feature_set=all`` refits on every column (the file artifacts back in),
    the words still last; the defaults keep the served model's own columns."""
    from midiml.classify.pipelines import FittedModel, feature_columns
    from midiml.represent.features import WORDS_COLUMN

    tool = _tool()
    table = pd.DataFrame(
        {"file_id": ["a"], "genre": ["x"], "pitch_mean": [60.0], "n_tracks": [2.0]}
    ).assign(**{WORDS_COLUMN: ["w"]})
    robust = [*feature_columns(table, "robust"), WORDS_COLUMN]
    served = FittedModel(
        task="genre",
        model="vote_and_words",
        pipeline=MusicAndWords(DummyClassifier(), DummyClassifier(), 0.5),
        classes=["x"],
        columns=robust,
        positive=None,
        genres=["x"],
        best_params={},
        cv_macro_f1=float("nan"),
        cv_folds=0,
        fit_seconds=0.0,
    )
    words = OmegaConf.create(
        {"weight": 0.5, "estimator": {"_target_": "sklearn.dummy.DummyClassifier"}}
    )
    same = tool.variant(
        served, OmegaConf.create({"classifier": {"feature_set": "robust", "words": words}}), table
    )
    every = tool.variant(
        served, OmegaConf.create({"classifier": {"feature_set": "all", "words": words}}), table
    )
    assert same.columns == robust and "n_tracks" not in same.columns
    assert "n_tracks" in every.columns and every.columns[-1] == WORDS_COLUMN
    # rows weighed by source as the overridden config says (refits and held-out refits)
    assert same.source_power == 0.0
    weighed = OmegaConf.create(
        {
            "classifier": {
                "feature_set": "robust",
                "words": words,
                "source_weighting": {"tasks": ["genre"], "power": 0.75},
            }
        }
    )
    assert tool.variant(served, weighed, table).source_power == 0.75


def test_out_of_source_score_is_the_pipelines():
    """The tool scores a variant as ``serve_model: auto_cross_source`` would: the mean over
    genres of each genre's mean held-out-source accuracy, the loops' recall for lo-fi."""
    tool = _tool()
    files = pd.DataFrame(
        {
            "file_id": ["1", "2", "3", "4"],
            "source": ["a", "b", "c", "lofi"],
            "genre": ["classical", "classical", "videogame", "lofi"],
            "status": "ok",
        }
    )
    held = {"held_out/a": 0.9, "held_out/b": 0.8, "held_out/c": 0.7}
    got = tool.out_of_source(held, files, 0.5)
    assert got == {
        "out_of_source/classical": 0.85,
        "out_of_source/lofi": 0.5,
        "out_of_source/videogame": 0.7,
        "out_of_source_score": round((0.85 + 0.7 + 0.5) / 3, 3),
    }


def test_leaves_are_named_by_their_estimator():
    tool = _tool()
    scaled = Pipeline([("scale", StandardScaler()), ("clf", LogisticRegression())])
    calibrated = Pipeline([("scale", StandardScaler()), ("clf", CalibratedClassifierCV(SVC()))])
    assert tool.leaf_name(scaled, ["pitch_std"]) == "LogisticRegression"
    assert tool.leaf_name(calibrated, ["pitch_std"]) == "SVC"
    assert tool.leaf_name(scaled, ["words"]) == "words"
    forest = Pipeline([("scale", StandardScaler()), ("clf", RandomForestClassifier())])
    assert tool.leaf_name(forest, ["pitch_std"]) == "RandomForestClassifier"  # not its trees


def test_accuracies_decide_with_the_given_prior():
    tool = _tool()
    classes = ["classical", "lofi", "videogame"]
    task = SimpleNamespace(labels=pd.Series({"a": "lofi", "b": "classical"}))
    tables = {
        "test": pd.DataFrame({"file_id": ["a", "b"]}),
        "crop": pd.DataFrame({"file_id": ["a#p", "b#p"]}),  # a re-encoding keeps its song's label
        tool.LOOPS: pd.DataFrame({"file_id": ["loop1"]}),  # made-up loops are all lo-fi
    }
    p = np.array([[0.5, 0.3, 0.2], [0.7, 0.2, 0.1]])
    probas = {tool.SERVED: {"test": p, "crop": p, tool.LOOPS: p[:1]}}
    plain = tool.accuracies(probas, tables, task, classes, None)[tool.SERVED]
    assert plain == {"test": 0.5, "crop": 0.5, tool.LOOPS: 0.0}
    trusting_lofi = tool.accuracies(probas, tables, task, classes, {"lofi": 2.0})[tool.SERVED]
    assert trusting_lofi == {"test": 1.0, "crop": 1.0, tool.LOOPS: 1.0}


def test_without_a_pipeline_run_it_says_so_in_one_line(tmp_path, monkeypatch):
    tool = _tool()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("sys.argv", ["genre_tuning.py"])
    with pytest.raises(SystemExit) as stop:
        tool.main()
    assert "models/classifiers/manifest.json" in str(stop.value)
    assert "run the pipeline first" in str(stop.value)


def test_an_edit_of_the_code_changes_the_cache_key(tmp_path):
    tool = _tool()
    code = tmp_path / "represent"
    code.mkdir()
    (code / "perturb.py").write_text("STEP_S = 0.12\n")
    before = tool.code_version((code,))
    assert tool.code_version((code,)) == before  # stable while nothing changes
    (code / "perturb.py").write_text("STEP_S = 0.10\n")
    assert tool.code_version((code,)) != before


def test_blend_ceiling_is_the_best_weighting_of_the_leaves():
    tool = _tool()
    classes = ["classical", "lofi", "videogame"]
    task = SimpleNamespace(labels=pd.Series({"a": "classical", "b": "videogame", "c": "lofi"}))
    tables = {"test": pd.DataFrame({"file_id": ["a", "b", "c"]})}
    right = np.array([[0.6, 0.1, 0.3], [0.4, 0.1, 0.5], [0.2, 0.7, 0.1]])  # all three right
    wrong = np.array([[0.1, 0.1, 0.8], [0.9, 0.05, 0.05], [0.1, 0.8, 0.1]])  # only c right
    blend = (right + wrong) / 2  # the served blend gets a and b wrong
    probas = {
        tool.SERVED: {"test": blend},
        "knows": {"test": right},
        "confused": {"test": wrong},
    }
    served = tool.accuracies(probas, tables, task, classes, None)[tool.SERVED]["test"]
    ceiling = tool.blend_ceiling(probas, tables, task, classes, None)["test"]
    assert served == round(1 / 3, 3) and ceiling == 1.0  # weight 0 on the confused leaf
    # with only the confused leaf no weighting helps: the bound is its own accuracy
    alone = tool.blend_ceiling({"confused": {"test": wrong}}, tables, task, classes, None)
    assert alone == {"test": round(1 / 3, 3)}


def _run_tables(root, ids, status=None):
    """files / splits / features parquet of a toy pipeline run under ``root``."""
    (root / "interim").mkdir(parents=True)
    (root / "features").mkdir()
    genre = ["classical" if i.startswith("c") else "videogame" for i in ids]
    files = pd.DataFrame({"file_id": ids, "genre": genre, "status": status or ["ok"] * len(ids)})
    files.to_parquet(root / "interim/files.parquet")
    split = ["test" if i.endswith("0") else "train" for i in ids]
    pd.DataFrame({"file_id": ids, "genre": genre, "split": split}).to_parquet(
        root / "interim/splits.parquet"
    )
    ok = files[files["status"] == "ok"]
    ok.assign(pitch_std=1.0)[["file_id", "genre", "pitch_std"]].to_parquet(
        root / "features/features.parquet"
    )


def test_more_songs_join_the_training_split_and_the_test_stays(tmp_path):
    tool = _tool()
    _run_tables(tmp_path / "this", ["c0", "c1", "v0", "v1"])
    # the other run (larger max_files) has this run's songs, two more, and a broken file
    _run_tables(
        tmp_path / "other",
        ["c0", "c1", "c2", "v0", "v1", "v3", "v9"],
        status=["ok"] * 6 + ["quarantined"],
    )
    files, splits, table, _ = tool.read_tables(with_notes=False, root=tmp_path / "this")
    files2, splits2, table2, _, new = tool.with_more_songs(files, splits, table, tmp_path / "other")
    assert new == ["c2", "v3"]  # not the quarantined one, not the ones this run has
    split = splits2.set_index("file_id")["split"]
    assert list(split[new]) == ["train", "train"]
    assert split[split == "test"].index.tolist() == ["c0", "v0"]  # the test songs stay
    assert sorted(table2["file_id"]) == ["c0", "c1", "c2", "v0", "v1", "v3"]
    assert set(files2["file_id"]) == set(table2["file_id"])
    with pytest.raises(SystemExit, match="has no song this run lacks"):
        tool.with_more_songs(files2, splits2, table2, tmp_path / "other")
    with pytest.raises(SystemExit, match="--more-songs: no .*files.parquet"):
        tool.with_more_songs(files, splits, table, tmp_path / "missing")
