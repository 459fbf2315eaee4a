"""Leave-one-source-out as a scikit-learn splitter (``held_out.LeaveOneSourceOut``)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_score

from midiml.classify.held_out import LeaveOneSourceOut, held_out_folds


def _by_hand(ids: list[str], labels: pd.Series, source: pd.Series) -> dict:
    """The folds as they were written before the splitter: per source of a label two or more
    sources have, (every other source's songs, its own songs of such labels)."""
    src, lab = source.loc[ids].astype(str), labels.loc[ids].astype(str)
    n_sources = src.groupby(lab).nunique()
    multi = set(n_sources[n_sources >= 2].index)
    return {
        held: (
            [i for i in ids if src[i] != held],
            [i for i in ids if src[i] == held and lab[i] in multi],
        )
        for held in sorted(src[lab.isin(multi)].unique())
    }


def _songs(seed: int, n: int = 60) -> tuple[list[str], pd.Series, pd.Series]:
    rng = np.random.default_rng(seed)
    sources = {"piano": "classical", "scores": "classical", "games": "videogame",
               "chips": "videogame", "loops": "lofi"}  # fmt: skip
    ids = [f"s{k:03d}" for k in rng.permutation(n)]
    src = pd.Series({i: str(rng.choice(list(sources))) for i in ids})
    lab = src.map(sources)
    lab[src == "scores"] = np.where(rng.random((src == "scores").sum()) < 0.3, "bach", "classical")
    return ids, lab, src


def test_splitter_folds_are_the_hand_written_ones():
    """Same sources, same order, same songs in each side: the held-out numbers cannot move."""
    for seed in range(5):
        ids, lab, src = _songs(seed)
        assert held_out_folds(ids, lab, src) == _by_hand(ids, lab, src)


def test_a_source_no_other_teaches_has_no_fold_and_says_why():
    ids, lab, src = _songs(0)
    split = LeaveOneSourceOut()
    y, groups = lab.loc[ids].to_numpy(), src.loc[ids].to_numpy()
    assert split.get_n_splits(ids, y, groups) == 4 == len(list(split.split(ids, y, groups)))
    assert list(split.unscored(y, groups)) == ["loops"]
    one = np.array(["loops"] * len(ids))
    assert list(split.split(ids, y, one)) == [] and split.get_n_splits(ids, y, one) == 0


def test_it_is_a_scikit_learn_splitter_with_groups_source():
    """``cv=LeaveOneSourceOut()`` with ``groups=source`` in scikit-learn's own tools: one score
    per source that can be left out."""
    ids, lab, src = _songs(1)
    y = lab.loc[ids].to_numpy()
    X = np.random.default_rng(0).normal(size=(len(ids), 3)) + (y == "lofi")[:, None]  # noqa: N806
    scores = cross_val_score(
        LogisticRegression(), X, y, groups=src.loc[ids].to_numpy(), cv=LeaveOneSourceOut()
    )
    assert len(scores) == 4 and np.all((scores >= 0) & (scores <= 1))
