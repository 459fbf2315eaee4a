"""The lone-source prior: a one-source class trusted as far as held-out sources allow."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf

from midiml.classify.lone_source import apply_prior, choose_prior, lone_source_classes
from midiml.classify.pipelines import load_model
from midiml.classify.train_all import train_all
from tests.conftest import classifier_models
from tests.test_robust_serving import served  # noqa: F401  (the fixture)

CLASSES = ["classical", "lofi", "videogame"]


def test_apply_prior_scales_and_renormalises():
    p = np.array([[0.6, 0.3, 0.1], [0.2, 0.1, 0.7]])
    out = apply_prior(p, CLASSES, {"lofi": 3.0})
    assert np.allclose(out.sum(axis=1), 1.0)
    assert out[0].argmax() == 1  # 0.9 against 0.6: lo-fi now wins the first row
    assert out[1].argmax() == 2  # 0.3 against 0.7: a clear video-game song stays one
    assert out[0, 0] / out[0, 2] == pytest.approx(6.0)  # the other classes keep their ratio
    assert apply_prior(p, CLASSES, None) is p and apply_prior(p, CLASSES, {}) is p


def test_lone_source_classes_need_a_class_with_two_sources():
    labels = pd.Series(["a", "a", "b", "b", "c"], index=list("12345"))
    source = pd.Series(["a1", "a2", "b1", "b1", "c1"], index=list("12345"))
    assert lone_source_classes(labels, source) == ["b", "c"]
    assert lone_source_classes(labels, pd.Series("s", index=list("12345"))) == []


def held_out(lofi_probs: list[float]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Held-out predictions of classical songs with the given lo-fi probabilities."""
    lofi = np.array(lofi_probs)
    proba = np.c_[1.0 - lofi, lofi, np.zeros_like(lofi)]
    return {"classical_b": (proba, np.array(["classical"] * len(lofi), dtype=object))}


def test_choose_prior_takes_the_largest_factor_within_the_false_rate():
    # lo-fi probabilities of 100 classical songs; factor f claims a song when f*p > 1 - p
    probs = [0.01] * 97 + [0.15, 0.25, 0.4]
    choice = choose_prior(held_out(probs), CLASSES, ["lofi"], [2, 3, 4, 8], 0.02)
    curve = choice["curve"]["lofi"]
    assert curve == {"1": 0.0, "2": 0.01, "3": 0.01, "4": 0.02, "8": 0.03}
    assert choice["prior"] == {"lofi": 4.0} and choice["false_rate"] == {"lofi": 0.02}
    assert choice["n_songs"] == 100 and choice["max_false_rate"] == 0.02
    # a stricter limit: a smaller factor; none within it: factor 1
    assert choose_prior(held_out(probs), CLASSES, ["lofi"], [2, 3, 4, 8], 0.0)["prior"] == {
        "lofi": 1.0
    }
    assert choose_prior(held_out([0.6] * 10), CLASSES, ["lofi"], [2], 0.05)["prior"] == {
        "lofi": 1.0
    }
    # nothing to judge by: no prior at all
    assert choose_prior({}, CLASSES, ["lofi"], [2], 0.01)["prior"] == {}
    assert choose_prior(held_out(probs), CLASSES, [], [2], 0.01)["prior"] == {}


def test_training_sets_the_prior_of_the_one_source_genre(served, tmp_path):  # noqa: F811
    """Loops from one source, runs from two: the loops model gets a factor chosen from the
    runs sources left out, the saved model applies it, and the report shows it."""
    _, (params, files, table, notes) = served
    files = files.copy()
    files.loc[files["genre"] == "loops", "source"] = "loops_only"
    cfg = OmegaConf.merge(
        params,
        {
            "classifier": {
                "serve_model": "auto_held_out_source",
                "models": classifier_models(logreg={"C": [1.0]}),
                "lone_source_prior": {
                    "tasks": ["genre"],
                    "factors": [2, 4, 1000],
                    "max_false_rate": 0.0,
                },
            }
        },
    )
    manifest = train_all(
        cfg, files, files[["file_id", "genre", "split"]], table, notes, tmp_path, log=lambda *_: 0
    )
    entry = manifest["tasks"]["genre"]["models"]["logreg"]
    choice = entry["class_prior"]
    assert set(choice["prior"]) == {"loops"}  # the genre with two sources gets none
    assert set(entry["held_out_source"]) == {"runs_a", "runs_b"}
    curve = choice["curve"]["loops"]
    assert curve["1000"] >= curve["4"] >= curve["2"] >= curve["1"]
    assert choice["false_rate"]["loops"] == 0.0
    assert choice["prior"]["loops"] == max(float(f) for f, r in curve.items() if r == 0.0)

    model = load_model(tmp_path / entry["file"])
    assert model.class_prior == choice["prior"]
    X = table.set_index("file_id").loc[["runs/0", "loops/0"], model.columns].to_numpy(float)
    raw = model.pipeline.estimator_.predict_proba(X)
    assert np.allclose(model.predict_proba(X), apply_prior(raw, model.classes, choice["prior"]))

    from midiml.report.classifiers import render_class_prior

    md = "\n".join(render_class_prior(choice))
    assert "lone-source prior" in md and f"×{choice['prior']['loops']:g}" in md
