"""Classifier tasks, train-only scaling and grid search, metrics, and the piano-roll CNN."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf

from midiml.classify.pipelines import (
    TaskSkipped,
    build_task,
    feature_matrix,
    load_model,
    save_model,
    searched_feature_model,
    with_copies,
)
from midiml.evaluate import classification as ev
from midiml.report import classifiers as classifiers_page
from tests.conftest import classifier_models, tiny_params

CFG = OmegaConf.create(
    {
        "tasks": {
            "genre": {},
            "composer": {"min_pieces": 3},
            "chopin_vs_other": {"label": "composer", "positive": "Chopin", "negative": "other"},
        },
        "min_train_per_class": 2,
        "cv_folds": 3,
        "scoring": "f1_macro",
        "n_jobs": 1,
        "models": classifier_models(
            logreg={"C": [0.1, 10.0]}, random_forest={"n_estimators": [20]}, svm={"C": [1.0]}
        ),
    }
)


def toy_tables(per_genre: int = 12, seed: int = 0):
    """files, splits and a feature table where the genres differ in feature ``f0``."""
    rng = np.random.default_rng(seed)
    rows, feats, splits = [], [], []
    composers = ["Chopin", "Liszt", "Bach", "Solo"]
    for g, genre in enumerate(["alpha", "beta", "gamma"]):
        for i in range(per_genre):
            fid = f"{genre}/{i:02d}"
            comp = None
            if genre == "alpha":
                comp = composers[i % 3] if i < per_genre - 1 else "Solo"  # Solo: one piece
            rows.append({"file_id": fid, "genre": genre, "status": "ok", "composer": comp})
            feats.append(
                {
                    "file_id": fid,
                    "genre": genre,
                    "f0": g * 10 + rng.normal(),
                    "f1": rng.normal() * 100 + 1000,
                    "f2": (composers.index(comp) * 3 if comp else 0) + rng.normal(),
                }
            )
            split = "test" if i % 6 == 0 else "val" if i % 6 == 1 else "train"
            splits.append({"file_id": fid, "genre": genre, "split": split})
    return pd.DataFrame(rows), pd.DataFrame(splits), pd.DataFrame(feats)


def test_tasks_label_songs_and_filter_composers():
    files, splits, _ = toy_tables()
    genre = build_task("genre", files, splits, CFG)
    assert genre.classes == ["alpha", "beta", "gamma"] and len(genre.labels) == 36
    composer = build_task("composer", files, splits, CFG)
    assert "Solo" not in composer.classes and composer.classes == ["Bach", "Chopin", "Liszt"]
    assert composer.genres == ["alpha"]
    chopin = build_task("chopin_vs_other", files, splits, CFG)
    assert chopin.classes == ["Chopin", "other"] and chopin.positive == "Chopin"
    assert (chopin.labels == "other").sum() == 8  # every other composer, Solo included
    assert set(chopin.ids("test")).isdisjoint(chopin.ids("train"))


def test_unlearnable_tasks_are_skipped_with_a_reason():
    files, splits, _ = toy_tables()
    strict = OmegaConf.merge(CFG, {"tasks": {"composer": {"min_pieces": 50}}})
    with pytest.raises(TaskSkipped, match="need 2"):
        build_task("composer", files, splits, strict)
    no_comp = files.assign(composer=None)
    with pytest.raises(TaskSkipped, match="composer"):
        build_task("chopin_vs_other", no_comp, splits, CFG)
    few = OmegaConf.merge(CFG, {"min_train_per_class": 100})
    with pytest.raises(TaskSkipped, match="fewer than 100 training songs"):
        build_task("genre", files, splits, few)


def test_scaler_is_fitted_on_training_songs_only_and_fit_is_seeded():
    files, splits, table = toy_tables()
    task = build_task("genre", files, splits, CFG)
    fitted = searched_feature_model(task, "logreg", table, CFG, seed=3)[0]
    train_x = feature_matrix(table, task.ids("train"), fitted.columns)
    all_x = feature_matrix(table, sorted(table["file_id"]), fitted.columns)
    scaler = fitted.pipeline.named_steps["scale"]
    np.testing.assert_allclose(scaler.mean_, train_x.mean(axis=0))
    assert not np.allclose(scaler.mean_, all_x.mean(axis=0))
    assert fitted.best_params["C"] in (0.1, 10.0) and fitted.cv_folds == 3
    test_x = feature_matrix(table, task.ids("test"), fitted.columns)
    assert (fitted.predict(test_x) == task.y("test")).mean() == 1.0
    again = searched_feature_model(task, "logreg", table, CFG, seed=3)[0]
    np.testing.assert_array_equal(fitted.predict_proba(test_x), again.predict_proba(test_x))


def test_final_fit_beside_other_work_is_the_same_fit():
    """``beside`` (the held-out refits in the train stage) runs while the final fit runs in a
    thread; it gets an unfitted copy of the pipeline, and the fit is the one made without it."""
    files, splits, table = toy_tables()
    task = build_task("genre", files, splits, CFG)
    alone, _, nothing = searched_feature_model(task, "svm", table, CFG, seed=3)
    seen = {}

    def beside(pipeline, columns, power):
        seen.update(fitted=hasattr(pipeline, "classes_"), columns=columns, power=power)
        return "refits"

    fitted, _, aside = searched_feature_model(task, "svm", table, CFG, seed=3, beside=beside)
    assert nothing is None and aside == "refits"
    assert seen == {"fitted": False, "columns": fitted.columns, "power": 0.0}
    test_x = feature_matrix(table, task.ids("test"), fitted.columns)
    np.testing.assert_array_equal(alone.predict_proba(test_x), fitted.predict_proba(test_x))


def test_fit_beside_keeps_the_callers_thread_limits():
    """A new thread starts with OpenMP's default thread count, not the stage's limit (OpenMP's
    is per thread); ``fit_beside`` fits with the caller's, on which a fit's numbers may depend."""
    from concurrent.futures import ThreadPoolExecutor

    from sklearn.base import BaseEstimator
    from threadpoolctl import threadpool_info, threadpool_limits

    from midiml.classify.pipelines import fit_beside

    class Probe(BaseEstimator):
        def fit(self, X, y):  # noqa: N803
            self.threads_ = {lib["prefix"]: lib["num_threads"] for lib in threadpool_info()}
            return self

    with threadpool_limits(limits=1), ThreadPoolExecutor(1) as pool:
        probe = fit_beside(pool, Probe(), np.zeros((2, 1)), np.array([0, 1]), None).result()
    assert probe.threads_ and set(probe.threads_.values()) == {1}


def test_copies_follow_their_songs_into_a_fit_and_out_of_it():
    table = pd.DataFrame({"file_id": ["a", "b", "c"], "x": [1.0, 2.0, 3.0]})
    labels = pd.Series(["lofi", "classical", "videogame"], index=["a", "b", "c"])
    copies = pd.DataFrame(
        {"file_id": ["c#copy0", "a#copy0", "a#excerpt0"], "x": [30.0, 10.0, 11.0]}
    )
    X, y = with_copies(table, ["a", "b"], labels, copies, ["x"])
    # the songs in the order asked, then the copies of those songs only (c is left out)
    assert X[:, 0].tolist() == [1.0, 2.0, 10.0, 11.0]
    assert y.tolist() == ["lofi", "classical", "lofi", "lofi"]
    X, y = with_copies(table, ["c"], labels, None, ["x"])
    assert X[:, 0].tolist() == [3.0] and y.tolist() == ["videogame"]


@pytest.mark.parametrize("model", ["random_forest", "svm"])
def test_every_model_gives_probabilities_in_class_order(model):
    files, splits, table = toy_tables()
    task = build_task("genre", files, splits, CFG)
    fitted = searched_feature_model(task, model, table, CFG, seed=0)[0]
    proba = fitted.predict_proba(feature_matrix(table, task.ids("test"), fitted.columns))
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert list(fitted.predict(feature_matrix(table, task.ids("test"), fitted.columns))) == [
        fitted.classes[i] for i in proba.argmax(axis=1)
    ]


def _member_fits(task, table, models):
    from midiml.classify.fits import ModelFit, vote_folds

    fitted = [searched_feature_model(task, m, table, CFG, seed=0)[0] for m in models]
    return {f.model: ModelFit(f, {}, {}, vote_folds(f, task, table, seed=0)) for f in fitted}


def test_vote_is_the_mean_of_its_members_probabilities(tmp_path):
    from midiml.classify.selection import assemble

    files, splits, table = toy_tables()
    task = build_task("genre", files, splits, CFG)
    fits = _member_fits(task, table, ("logreg", "svm"))
    members = [f.fitted for f in fits.values()]
    cfg = OmegaConf.merge(CFG, {"vote": ["logreg", "svm"]})
    built = assemble(task, fits, table, cfg, seed=0)
    vote = built["vote"]
    x = feature_matrix(table, task.ids("test"), vote.columns)
    np.testing.assert_allclose(
        vote.predict_proba(x), np.mean([m.predict_proba(x) for m in members], axis=0)
    )
    assert vote.best_params == {"members": ["logreg", "svm"]} and 0 <= vote.cv_macro_f1 <= 1
    save_model(vote, tmp_path / "vote.pkl")  # the CLI loads it like any feature model
    np.testing.assert_allclose(
        load_model(tmp_path / "vote.pkl").predict_proba(x), vote.predict_proba(x)
    )
    for m, single in members_by_name(built, fits).items():  # each model alone, as fitted
        np.testing.assert_allclose(single.predict_proba(x), fits[m].fitted.predict_proba(x))
    assert "vote" not in assemble(task, dict(list(fits.items())[:1]), table, cfg, seed=0)
    # composers: 2-3 training songs each, so an outer CV fold leaves too few for the SVM's
    # own calibration folds -> skipped with a reason, not a crash of the stage
    composer = build_task("composer", files, splits, CFG)
    built = assemble(composer, _member_fits(composer, table, ("logreg", "svm")), table, cfg, 0)
    assert "too few" in built["vote"]


def members_by_name(built, fits):
    return {m: built[m] for m in fits}


def test_a_saved_vote_refers_to_its_members_files(tmp_path):
    """The selection writes each model alone, then the vote with references to those files
    (``save_model(elsewhere=...)``): no copy of a member, the same predictions once loaded."""
    import pickle

    from midiml.classify.selection import assemble
    from midiml.classify.served import fitted_members

    files, splits, table = toy_tables()
    task = build_task("genre", files, splits, CFG)
    fits = _member_fits(task, table, ("logreg", "svm"))
    cfg = OmegaConf.merge(CFG, {"vote": ["logreg", "svm"]})
    built = assemble(task, fits, table, cfg, seed=0)
    x = feature_matrix(table, task.ids("test"), built["vote"].columns)
    for m in ("logreg", "svm"):
        save_model(built[m], tmp_path / f"{m}.pkl")
    save_model(built["vote"], tmp_path / "inline.pkl")
    save_model(built["vote"], tmp_path / "vote.pkl", {"logreg": "logreg.pkl", "svm": "svm.pkl"})
    inline, vote = (tmp_path / "inline.pkl").stat().st_size, (tmp_path / "vote.pkl").stat().st_size
    assert vote < inline - (tmp_path / "svm.pkl").stat().st_size / 2
    with pytest.raises(pickle.UnpicklingError):  # it cannot be read without its members
        pickle.loads((tmp_path / "vote.pkl").read_bytes())
    loaded = load_model(tmp_path / "vote.pkl")
    np.testing.assert_array_equal(loaded.predict_proba(x), built["vote"].predict_proba(x))
    assert list(fitted_members(loaded.pipeline)) == ["logreg", "svm"]
    # the same bytes when saved again (a DVC output), and a model alone is never a reference
    first = (tmp_path / "vote.pkl").read_bytes()
    save_model(built["vote"], tmp_path / "vote.pkl", {"logreg": "logreg.pkl", "svm": "svm.pkl"})
    assert (tmp_path / "vote.pkl").read_bytes() == first
    save_model(built["svm"], tmp_path / "svm.pkl", {"svm": "svm.pkl"})
    np.testing.assert_array_equal(
        pickle.loads((tmp_path / "svm.pkl").read_bytes()).predict_proba(x),
        built["svm"].predict_proba(x),
    )


def test_vote_cv_score_from_member_folds_is_the_voting_classifiers_own():
    """The vote's CV score, computed from each member's out-of-fold probabilities (each
    member in its own stage), equals ``cross_val_score`` of a soft ``VotingClassifier``
    refitting the members fold by fold (the calibrated SVM's inner folds shrunk as then)."""
    from sklearn.base import clone
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.ensemble import VotingClassifier
    from sklearn.model_selection import StratifiedKFold, cross_val_score

    from midiml.classify.selection import assemble

    files, splits, table = toy_tables()
    task = build_task("genre", files, splits, CFG)
    fits = _member_fits(task, table, ("logreg", "random_forest", "svm"))
    vote = assemble(task, fits, table, OmegaConf.merge(CFG, {"vote": list(fits)}), seed=0)["vote"]
    X, y = feature_matrix(table, task.ids("train"), vote.columns), task.y("train")
    folds = vote.cv_folds
    smallest = int(min(n - -(-n // folds) for n in pd.Series(y).value_counts()))
    inner = StratifiedKFold(min(folds, smallest), shuffle=True, random_state=0)
    pipes = []
    for name, f in fits.items():
        pipe = clone(f.fitted.pipeline)
        if isinstance(pipe.named_steps["clf"], CalibratedClassifierCV):
            pipe.set_params(clf__cv=inner)
        pipes.append((name, pipe))
    cv = cross_val_score(
        VotingClassifier(pipes, voting="soft"),
        X,
        y,
        scoring=CFG.scoring,
        cv=StratifiedKFold(folds, shuffle=True, random_state=0),
    )
    assert vote.cv_macro_f1 == pytest.approx(float(np.mean(cv)), abs=1e-12)


def test_scores_baselines_and_confusion():
    y = ["Chopin", "other", "other", "Chopin"]
    pred = ["Chopin", "Chopin", "other", "other"]
    s = ev.scores(y, pred, positive="Chopin")
    assert s["accuracy"] == 0.5 and s["macro_f1"] == pytest.approx(0.5)
    assert s["f05"] == pytest.approx(0.5)  # precision 1/2, recall 1/2
    base = ev.majority_baseline(["other", "other", "Chopin"], y, positive="Chopin")
    assert base["predicts"] == "other" and base["accuracy"] == 0.5 and base["f05"] == 0.0
    naive = ev.naive_positive_baseline(y, "Chopin")
    assert naive["accuracy"] == 0.5 and naive["f05"] == pytest.approx(0.5 * 1.25 / 1.125)
    cm = ev.confusion(y, pred, ["Chopin", "other"])
    assert cm.tolist() == [[1, 1], [1, 1]]
    rows = ev.confusion_rows(y, pred)
    assert list(rows.columns) == ["actual", "predicted"] and len(rows) == 4


def test_markdown_has_tables_seed_figures_and_skip_reasons():
    metrics = {
        "tasks": {
            "chopin_vs_other": {
                "classes": ["Chopin", "other"],
                "n_train": 5,
                "n_val": 1,
                "n_test": 2,
                "positive": "Chopin",
                "majority": {"accuracy": 0.5, "macro_f1": 0.3, "f05": 0.0, "predicts": "other"},
                "naive_positive": {"accuracy": 0.5, "macro_f1": 0.3, "f05": 0.6},
                "models": {
                    "logreg": {
                        "accuracy": 0.75,
                        "macro_f1": 0.7,
                        "f05": 0.8,
                        "cv_macro_f1": 0.6,
                        "val_accuracy": 1.0,
                    }
                },
                "best": "logreg",
            },
            "composer": {"skipped": "1 class(es) with enough songs; need 2"},
        }
    }
    md = classifiers_page.render_markdown(metrics, {"chopin_vs_other/logreg": "figures/x.png"})
    assert "| logreg | 0.750 | 0.700 | 0.800 | 0.600 | 1.000 |" in md
    assert "validation accuracy 0.72, test accuracy 0.56" in md
    assert "Skipped: 1 class(es)" in md and "![chopin_vs_other logreg" in md


def test_piano_roll_cnn_trains_saves_and_reloads(tmp_path):
    from scipy import sparse

    from midiml.classify.cnn import PianoRollCNNClassifier, load_cnn, predict_songs

    rng = np.random.default_rng(0)

    def roll(low: bool) -> sparse.csr_matrix:
        m = np.zeros((24, 40), dtype=np.float32)
        rows = rng.integers(0, 8, 40) + (0 if low else 16)
        m[rows, np.arange(40)] = 1
        return sparse.csr_matrix(m)

    rolls = [roll(i % 2 == 0) for i in range(12)]
    y = np.array(["low" if i % 2 == 0 else "high" for i in range(12)], dtype=object)
    cfg = OmegaConf.create(
        {
            "roll": {"pitch_low": 0, "pitch_high": 23},
            "module": {
                "_target_": "midiml.classify.cnn.PianoRollCNN",
                "channels": [4],
                "stride": 1,
                "dropout": 0.0,
                "lr": 0.02,
                "weight_decay": 0.0,
            },
            "datamodule": {
                "_target_": "midiml.classify.cnn.CropDataModule",
                "crop_steps": 16,
                "train_crops_per_song": 4,
                "eval_crops_per_song": 3,
                "balanced": True,
                "batch_size": 16,
            },
            "max_epochs": 3,
        }
    )
    params = tiny_params(trainer={"max_epochs": 3})
    clf = PianoRollCNNClassifier(cfg, params, "t").fit(
        rolls[:8], y[:8], rolls[8:], y[8:], tmp_path / "ck"
    )
    proba = clf.predict_proba(rolls[8:])
    assert proba.shape == (4, 2) and clf.classes_ == ["high", "low"]
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)
    assert clf.fit_result.best_checkpoint is not None
    reloaded = load_cnn(clf.fit_result.best_checkpoint)
    assert reloaded.hparams.classes == ["high", "low"]
    np.testing.assert_allclose(predict_songs(reloaded, rolls[8:]), proba, rtol=1e-5)


def test_a_task_is_config_only():
    """A task is a config entry (``label`` column, ``min_pieces``, ``positive``): a new
    binary task needs no code."""
    files, splits, _ = toy_tables()
    cfg = OmegaConf.merge(
        CFG,
        {
            "tasks": {
                "alpha_vs_other": {
                    "label": "genre",
                    "positive": "alpha",
                    "negative": "other",
                }
            }
        },
    )
    task = build_task("alpha_vs_other", files, splits, cfg)
    assert task.classes == ["alpha", "other"] and task.positive == "alpha"
    genre = files.set_index("file_id")["genre"].loc[task.labels.index]
    assert ((genre == "alpha") == (task.labels == "alpha")).all()
    with pytest.raises(ValueError, match="no column"):
        build_task("tempo", files, splits, OmegaConf.merge(CFG, {"tasks": {"tempo": {}}}))
