"""Classification metrics, the majority baseline, confusion matrices and the report table.

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

TASK_ORDER = ("genre", "composer", "chopin_vs_other")
# The seed study's published figures (for comparison only; never used in our numbers).
SEED_FIGURES = {
    "chopin_vs_other": {"model": "CNN on piano rolls", "val_accuracy": 0.72, "test_accuracy": 0.56},
}


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


def confusion_figure(cm: np.ndarray, labels: Sequence[str], title: str):
    """Counts per (actual, predicted), rows = actual."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(labels)
    size = max(3.2, 0.45 * n + 1.8)
    fig, ax = plt.subplots(figsize=(size + 0.8, size))
    im = ax.imshow(cm, cmap="Blues")
    ax.set_xticks(range(n), labels, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(n), labels, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("actual")
    thresh = cm.max() / 2 if cm.size and cm.max() > 0 else 0.5
    for i in range(n):
        for j in range(n):
            ax.text(
                j,
                i,
                str(int(cm[i, j])),
                ha="center",
                va="center",
                fontsize=7,
                color="white" if cm[i, j] > thresh else "black",
            )
    ax.set_title(title, fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    fig.tight_layout()
    return fig


def confusion_rows(y_true: Sequence[Any], y_pred: Sequence[Any]) -> pd.DataFrame:
    """One row per song (actual, predicted): the table DVC's ``confusion`` template reads."""
    return pd.DataFrame({"actual": [str(v) for v in y_true], "predicted": [str(v) for v in y_pred]})


def _f(v: Any) -> str:
    return "–" if v is None else f"{v:.3f}"


def render_markdown(metrics: dict[str, Any], figures: dict[str, str]) -> str:
    """``reports/classifiers.md``: per task a table of test scores, baselines and figures."""
    lines = [
        "# Classifiers",
        "",
        "Test-split scores of every model, computed by the `evaluate_classifiers` stage "
        "(`reports/metrics/classifiers.json`). Scalers and hyperparameters were fitted "
        "on the training split only (grid search with stratified CV there); `vote` is "
        "the mean probability of the tuned feature models; the CNN "
        "early-stops on the validation split and predicts a song by averaging its "
        "crops' probabilities.",
        "",
    ]
    tasks = metrics.get("tasks", {})
    order = {t: i for i, t in enumerate(TASK_ORDER)}
    for task in sorted(tasks, key=lambda t: (order.get(t, len(order)), t)):
        res = tasks[task]
        lines += [f"## {task}", ""]
        if res.get("skipped"):
            lines += [f"Skipped: {res['skipped']}", ""]
            continue
        binary = "f05" in res.get("majority", {})
        lines.append(
            f"Classes: {', '.join(res['classes'])}; songs train/val/test "
            f"{res['n_train']}/{res['n_val']}/{res['n_test']}."
        )
        lines.append("")
        head = (
            "| model | accuracy | macro-F1 |"
            + (" F0.5 |" if binary else "")
            + " CV macro-F1 (train) | val accuracy |"
        )
        lines += [head, "|---|" + "---:|" * (head.count("|") - 2)]
        rows = [
            (name + (" (piano roll)" if name == "cnn" else ""), m)
            for name, m in res["models"].items()
        ]
        rows.append(
            ("majority baseline (" + str(res["majority"]["predicts"]) + ")", res["majority"])
        )
        if "naive_positive" in res:
            rows.append((f"naive: all {res['positive']}", res["naive_positive"]))
        for name, m in rows:
            if m.get("skipped"):
                lines.append(f"| {name} | skipped: {m['skipped']} |")
                continue
            cells = [_f(m.get("accuracy")), _f(m.get("macro_f1"))]
            if binary:
                cells.append(_f(m.get("f05")))
            cells += [_f(m.get("cv_macro_f1")), _f(m.get("val_accuracy"))]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        seed = SEED_FIGURES.get(task)
        if seed:
            lines += [
                "",
                f"Seed study ({seed['model']}): validation accuracy "
                f"{seed['val_accuracy']:.2f}, test accuracy {seed['test_accuracy']:.2f} "
                "(their data and split; quoted for comparison).",
            ]
        best, selected = res.get("best"), res.get("selected")
        if best:
            lines += ["", f"Best on test: **{best}**."]
        if selected in res["models"]:
            sel = res["models"][selected]
            lines += [
                "",
                f"Chosen without looking at test songs (best validation macro-F1): "
                f"**{selected}**, test accuracy {_f(sel['accuracy'])}, macro-F1 "
                f"{_f(sel['macro_f1'])}. `midiml classify` serves "
                f"**{res.get('serve')}** (best CV score on the training split).",
            ]
        lines.append("")
        for model in res["models"]:
            fig = figures.get(f"{task}/{model}")
            if fig:
                lines.append(f"![{task} {model} confusion matrix]({fig})")
        lines.append("")
    blind = metrics.get("blind_test")
    if blind:
        lines += ["## Blind evaluation of the held-out test songs", ""]
        if blind.get("skipped"):
            lines += [f"Skipped: {blind['skipped']}", ""]
        else:
            lines += [
                "The test split's raw MIDI files were copied to "
                f"`{blind['folder']}/<genre>/` "
                f"and classified by `midiml evaluate-blind` (model `{blind['model']}`), "
                "which parses each file afresh, as a user's file would be.",
                "",
                "| genre | files | accuracy |",
                "|---|---:|---:|",
            ]
            for g, r in blind["per_genre"].items():
                lines.append(f"| {g} | {r['n']} | {_f(r['accuracy'])} |")
            lines += [
                f"| **overall** | {blind['overall']['n']} | {_f(blind['overall']['accuracy'])} |",
                "",
                f"Overall macro-F1 {_f(blind['overall']['macro_f1'])}; unreadable files "
                f"skipped: {len(blind['skipped_files'])}.",
                "",
            ]
    return "\n".join(lines).rstrip() + "\n"
