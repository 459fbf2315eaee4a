"""Classification metrics, the majority baseline and confusion matrices (pure functions).

Accuracy alone flatters a model on unbalanced classes (Chopin is ~15% of Classical), so
every score sits beside the majority-class baseline and macro-F1; Chopin-vs-other also gets
F0.5 (precision-weighted), as the seed study used.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, fbeta_score


def scores(
    y_true: Sequence[Any], y_pred: Sequence[Any], positive: Any | None = None
) -> dict[str, float]:
    """accuracy and macro-F1; with ``positive`` also F0.5 of that class (binary tasks)."""
    y_true, y_pred = np.asarray(y_true, dtype=object), np.asarray(y_pred, dtype=object)
    out = {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "macro_f1": float(f1_score(y_true, y_pred, average="macro", zero_division=0)),
        "n": len(y_true),
    }
    if positive is not None:
        out["f05"] = float(
            fbeta_score(
                y_true, y_pred, beta=0.5, pos_label=positive, average="binary", zero_division=0
            )
        )
    return out


def majority_baseline(
    y_train: Sequence[Any], y_test: Sequence[Any], positive: Any | None = None
) -> dict[str, Any]:
    """Always predict the training split's most frequent class (ties: first in sort order)."""
    counts = pd.Series(np.asarray(y_train, dtype=object)).value_counts()
    top = sorted(counts[counts == counts.max()].index)[0]
    out = scores(y_test, [top] * len(y_test), positive)
    out["predicts"] = top
    return out


def naive_positive_baseline(y_test: Sequence[Any], positive: Any) -> dict[str, float]:
    """The seed's naive baseline for a binary task: call every song the positive class."""
    return scores(y_test, [positive] * len(y_test), positive)


def confusion(y_true: Sequence[Any], y_pred: Sequence[Any], labels: Sequence[Any]) -> np.ndarray:
    return confusion_matrix(
        np.asarray(y_true, dtype=object), np.asarray(y_pred, dtype=object), labels=list(labels)
    )


def confusion_rows(y_true: Sequence[Any], y_pred: Sequence[Any]) -> pd.DataFrame:
    """One row per song (actual, predicted): the table DVC's ``confusion`` template reads."""
    return pd.DataFrame({"actual": [str(v) for v in y_true], "predicted": [str(v) for v in y_pred]})
