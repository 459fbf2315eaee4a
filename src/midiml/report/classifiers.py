"""reports/classifiers.md and its figures: scores beside baselines, confusion matrices, the
robustness section (re-encodings, held-out sources, what the served model relies on)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

TASK_ORDER = ("genre", "composer", "chopin_vs_other")
# The seed study's published figures (for comparison only; never used in our numbers).
SEED_FIGURES = {
    "chopin_vs_other": {"model": "CNN on piano rolls", "val_accuracy": 0.72, "test_accuracy": 0.56},
}


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


SERVE_RULES = {
    "auto": "best CV score on the training split",
    "auto_held_out_source": "best out-of-source score: the mean over genres of accuracy on "
    "training-split sources left out of its fit, made-up loops for the one-source genre",
}


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
        "the mean probability of the tuned feature models; `vote_and_words` blends "
        "it with a tf-idf model of each song's musical words (melodic figures, bass moves, "
        "textures, articulations and chord degrees in order); the CNN reads piano-roll "
        "crops, early-stops on the validation split and predicts a song by averaging its "
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
        models = res["models"].values()
        held = any("held_out_source_train_mean" in m for m in models)
        oos = any("out_of_source_score" in m for m in models)
        head = (
            "| model | accuracy | macro-F1 |"
            + (" F0.5 |" if binary else "")
            + " CV macro-F1 (train) | val accuracy |"
            + (" accuracy, original sources |" if "n_test_original_sources" in res else "")
            + (" held-out sources (train) |" if held else "")
            + (" check sources (selection draw) | out-of-source score |" if oos else "")
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
            if "n_test_original_sources" in res:
                cells.append(_f(m.get("accuracy_original_sources")))
            if held:
                cells.append(_f(m.get("held_out_source_train_mean")))
            if oos:
                cells += [_f(m.get("check_sources_recall")), _f(m.get("out_of_source_score"))]
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
                f"**{res.get('serve')}** ({SERVE_RULES.get(res.get('serve_rule'), 'fixed')}).",
            ]
        served = res["models"].get(res.get("serve") or "", {})
        if served.get("test_by_source"):
            lines += ["", *render_test_by_source(str(res["serve"]), served["test_by_source"])]
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


def render_test_by_source(model: str, rows: dict[str, dict[str, Any]]) -> list[str]:
    """The served model's test accuracy per source, hardest first: where its errors sit."""
    lines = [
        f"Test songs of each source, served model ({model}), hardest first:",
        "",
        "| source | genre | songs | accuracy |",
        "|---|---|---:|---:|",
    ]
    for source, r in sorted(rows.items(), key=lambda kv: (kv[1]["accuracy"], kv[0])):
        lines.append(f"| {source} | {r['genre']} | {r['n']} | {_f(r['accuracy'])} |")
    return lines


def render_robustness(rob: dict[str, Any]) -> str:
    """The robustness section of ``reports/classifiers.md``."""
    if rob.get("skipped"):
        return f"## Robustness\n\nSkipped: {rob['skipped']}\n"
    numeric = [c for c in rob["columns"] if c != rob.get("words_column")]
    cnn_head = " CNN |" if "cnn_clean_accuracy" in rob else ""
    words = " and the song's musical words" if len(numeric) < len(rob["columns"]) else ""
    lines = [
        "## Robustness (genre)",
        "",
        f"Served model: `{rob['model']}` on {len(numeric)} source-robust features{words} "
        "(file artifacts left out: track layout, tempo map, velocities, beat grid, length, "
        f"key).{_weighting_text(rob.get('source_power', 0.0))}",
        "",
        "### Re-encoded test songs",
        "",
        f"Clean test accuracy {rob['clean_accuracy']:.3f}. Each test song re-encoded "
        "(represent/perturb.py), features recomputed:",
        "",
        "| re-encoding | accuracy | " + " | ".join(rob["genres"]) + " |" + cnn_head,
        "|---|---:|" + "---:|" * len(rob["genres"]) + "---:|" * bool(cnn_head),
    ]
    for how, r in rob["reencoded"].items():
        per = " | ".join(f"{r['per_genre'].get(g, float('nan')):.3f}" for g in rob["genres"])
        cnn = f" {r['cnn_accuracy']:.3f} |" if cnn_head else ""
        lines.append(f"| {how} | {r['accuracy']:.3f} | {per} |{cnn}")
    if cnn_head:
        lines += [
            "",
            f"Last column: the genre CNN (piano roll) on the same re-encoded songs (clean "
            f"{rob['cnn_clean_accuracy']:.3f}). Its held-out-source accuracy costs a fit per "
            "source, too slow for the pipeline: `python benchmarks/cnn_held_out_source.py`.",
        ]
    lines += [
        "",
        "### Held-out sources",
        "",
        "Trained on every other source's training-split songs (with their re-encoded copies), "
        "tested on the held-out source's training-split songs; only genres with two or more "
        "sources. These are the numbers the serving rule chose the model by. (The same table "
        "for the model on every column, file artifacts included: `dvc exp run -S "
        "classifier.feature_set=all`, then `dvc metrics diff`.)",
        "",
        "| held-out source | genre | songs | accuracy |",
        "|---|---|---:|---:|",
    ]
    for src, r in rob["held_out_source"].items():
        lines.append(f"| {src} | {r['genre']} | {r['n']} | {r['served']:.3f} |")
    for genre, (n, acc) in pooled_by_genre(rob["held_out_source"]).items():
        lines.append(f"| **all {genre} sources** | {genre} | {n} | **{acc:.3f}** |")
    lines += render_class_prior(rob.get("class_prior") or {})
    lines += ["", "### What the model relies on (permutation importance on the test split)", ""]
    after, before = rob["importance"]["served"], rob["importance"].get("all_features")
    if before is None:  # classifier.importance.all_features: false (the default)
        lines += ["| rank | served model | drop |", "|---:|---|---:|"]
        lines += [
            f"| {i + 1} | {a['feature']} | {a['importance']:.3f} |" for i, a in enumerate(after)
        ]
        lines += [
            "",
            'The same model refitted on every column, file artifacts included (the "before" '
            "of the robust features), beside it: `dvc exp run -S "
            "classifier.importance.all_features=true`.",
        ]
        return "\n".join(lines) + "\n"
    lines += [
        "| rank | served model | drop | all features (before) | drop |",
        "|---:|---|---:|---|---:|",
    ]
    for i in range(max(len(after), len(before))):
        a = after[i] if i < len(after) else {"feature": "", "importance": float("nan")}
        b = before[i] if i < len(before) else {"feature": "", "importance": float("nan")}
        lines.append(
            f"| {i + 1} | {a['feature']} | {a['importance']:.3f} | {b['feature']} | "
            f"{b['importance']:.3f} |"
        )
    return "\n".join(lines) + "\n"


def _weighting_text(power: float) -> str:
    """How the served model's training rows were weighed by source (none at power 0)."""
    if not power:
        return ""
    return (
        f" Its training rows are weighed by source: a source of n rows (songs and their "
        f"copies) weighs n^-{power:g} a row, each genre keeping its total "
        "(`classifier.source_weighting`), so that a genre's big sources do not teach their "
        "own habits as the genre's; the held-out refits below are weighed alike."
    )


def pooled_by_genre(rows: dict[str, dict[str, Any]]) -> dict[str, tuple[int, float]]:
    """Per genre: its held-out songs and their accuracy, each source held out in turn
    (sources weighted by their songs; a source whose refit was refused is left out)."""
    out: dict[str, tuple[int, float]] = {}
    for genre in sorted({r["genre"] for r in rows.values()}):
        mine = [r for r in rows.values() if r["genre"] == genre and r["served"] == r["served"]]
        n = sum(r["n"] for r in mine)
        if n:
            out[genre] = (n, sum(r["n"] * r["served"] for r in mine) / n)
    return out


def _rate_cell(rate: float | None, chosen: bool) -> str:
    if rate is None:
        return "–"
    return f"**{rate:.1%}**" if chosen else f"{rate:.1%}"


def render_class_prior(choice: dict[str, Any]) -> list[str]:
    """Lines on the lone-source prior (classify/lone_source.py): the factor chosen and the
    false-claim rate of every factor tried."""
    if not choice.get("prior"):
        return []
    lines = [
        "",
        "### Trusting the one-source genre more (lone-source prior)",
        "",
        "A genre taught by one source cannot be left out and scored, and its model is sure of "
        "that source's habits only. What can be measured is the cost of trusting it more: "
        "songs of the other genres, from sources left out of the fit (training split), "
        "wrongly called that genre. The served model multiplies the genre's probability by "
        "the largest factor whose false-claim rate stays within "
        f"{choice['max_false_rate']:.1%} ({choice.get('n_songs', '?')} held-out songs).",
        "",
    ]
    factors = sorted({f for curve in choice["curve"].values() for f in curve}, key=float)
    lines += [
        "| genre | chosen factor | " + " | ".join(f"×{f}" for f in factors) + " |",
        "|---|---:|" + "---:|" * len(factors),
    ]
    for c, curve in choice["curve"].items():
        cells = " | ".join(
            _rate_cell(curve.get(f), float(f) == choice["prior"][c]) for f in factors
        )
        lines.append(f"| {c} | ×{choice['prior'][c]:g} | {cells} |")
    lines += ["", "Cells: share of held-out songs of other genres called that genre."]
    return lines


def render_check_sources(checks: dict[str, Any]) -> str:
    """The check sources (``data.check_sources``, never trained on): how often the served
    genre model calls each one's files the genre the config gives it."""
    if checks.get("skipped"):
        return f"### Check sources\n\nSkipped: {checks['skipped']}\n"
    if not checks:
        return ""
    genres = ", ".join(sorted({r["genre"] for r in checks.values()}))
    lines = [
        f"### Check sources {', '.join(checks)} (genre {genres}), never trained on",
        "",
        "Sources under `data.check_sources` (docs/add-a-data-source.md): obtained like any "
        "source, never ingested or trained on, written to `data/check_sources/<source>/<genre>/` "
        "and scored like a blind folder. A synthetic one is a floor, not music from elsewhere: "
        "a model that calls it something else will not know other people's files of that genre "
        "either. The served model was chosen on another draw of the synthetic ones "
        "(`classifier.check_selection_seed`), not these.",
        "",
        "| source | files | genre | share called its genre | predicted |",
        "|---|---:|---|---:|---|",
    ]
    for name, r in checks.items():
        counts = ", ".join(f"{g} {n}" for g, n in r["predicted"].items())
        lines.append(
            f"| {name} | {r['n']} | {r['genre']} | {r['expected_genre_share']:.3f} | {counts} |"
        )
    return "\n".join(lines) + "\n"
