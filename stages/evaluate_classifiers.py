"""DVC stage `evaluate_classifiers`: test scores, baselines, confusion matrices, blind test."""

import multiprocessing
import time
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path

from threadpoolctl import threadpool_limits

from midiml import tracking
from midiml.classify.evaluation import (
    blind_test,
    cnn_labels,
    cnn_songs,
    evaluate_all,
    load_manifest,
    saved_cnn_labels,
)
from midiml.classify.fits import CONCERN, read_copies
from midiml.classify.importance import queued_importance
from midiml.classify.pipelines import build_task, load_model
from midiml.classify.robustness import evaluate_robustness
from midiml.classify.runs import read_test_copies
from midiml.classify.serving import ModelsMissing, evaluate_blind, load_served
from midiml.classify.tables import read_notes, read_tables
from midiml.config import load_params
from midiml.data.download import get_source
from midiml.data.sources import check_sources_from_params
from midiml.io import atomic_dir, write_metrics, write_text
from midiml.report.classifiers import (
    confusion_figure,
    render_check_sources,
    render_markdown,
    render_robustness,
)

MODELS = Path("models/classifiers")
COPIES = Path("data/classifier_copies")
TESTS = Path("data/reencoded_test_songs")
BLIND = Path("data/blind")
CHECKS = Path("data/check_sources")
PLOTS = Path("reports/plots/confusion")
FIGURES = Path("reports/figures/classifiers")


def genre_cnn(params, entry: dict):
    """The trained genre CNN as a predictor from (notes, song ids), or None."""
    info = entry["models"].get("cnn", {})
    if not info.get("file"):
        return None
    from midiml.classify.cnn_fit import cnn_predictor  # torch: only when the CNN predicts here

    return cnn_predictor(MODELS / info["file"], params.classifier.cnn.roll)


def cnn_scored_here(manifest: dict) -> bool:
    """Whether this stage scores the genre CNN's robustness (its own stage left no scores):
    only then are the notes of the songs and of their re-encodings read (3 s, 1 GB)."""
    entry = manifest["tasks"].get("genre", {})
    info = {} if entry.get("skipped") else entry.get("models", {}).get("cnn", {})
    return bool(info.get("file")) and not info.get("robustness")


def robustness(params, manifest, files, splits, table, notes, served, importance, tests) -> dict:
    """Robustness of the served genre model (re-encodings, held-out sources, importance);
    ``served``: the served models as loaded for the blind folder; ``importance``: the
    permutation importance from the served model (``in_background``: ``queued_importance``);
    ``tests``: the re-encoded test songs (``read_test_copies``)."""
    entry = manifest["tasks"].get("genre", {})
    if entry.get("skipped") or not entry.get("serve"):
        return {"skipped": entry.get("skipped", "no served genre model")}
    start = time.perf_counter()
    fitted = (
        served.models["genre"]
        if not isinstance(served, ModelsMissing)
        else load_model(MODELS / entry["models"][entry["serve"]]["file"])
    )
    task = build_task("genre", files, splits, params.classifier)
    held_out = entry["models"][entry["serve"]].get("held_out_source")
    # only to refit held-out sources the selection did not score
    copies = read_copies(COPIES, "genre") if held_out is None else None
    cnn_scores = entry["models"].get("cnn", {}).get("robustness")
    rob = evaluate_robustness(
        params,
        fitted,
        task,
        files,
        table,
        notes,
        copies,
        manifest.get("features", {}),
        n_jobs=int(params.classifier.get("n_jobs", 1)),
        held_out=held_out,
        cnn=None if tests is not None and cnn_scores else genre_cnn(params, entry),
        test_copies=tests,
        cnn_scores=cnn_scores,
        importance=(lambda: importance(fitted)) if importance is not None else None,
    )
    rob["class_prior"] = entry["models"][entry["serve"]].get("class_prior", {})
    with tracking.run(params, CONCERN, "genre/robustness") as run:
        if run is not None:
            import mlflow

            mlflow.log_metric("clean_accuracy", rob["clean_accuracy"])
            for how, r in rob["reencoded"].items():
                mlflow.log_metric(f"reencoded.{how}", r["accuracy"])
                if "cnn_accuracy" in r:
                    mlflow.log_metric(f"reencoded_cnn.{how}", r["cnn_accuracy"])
            for src, r in rob["held_out_source"].items():
                mlflow.log_metric(f"held_out_source.{src}", r["served"])
            for c, f in rob["class_prior"].get("prior", {}).items():
                mlflow.log_metric(f"class_prior.{c}", f)
            mlflow.log_dict(rob["importance"], "permutation_importance.json")
    print(f"robustness: {time.perf_counter() - start:.1f} s")
    return rob


def check_sources(params, served) -> dict:
    """The served genre model on each check source (``data.check_sources``: obtained like any
    source into CHECKS/<source>/<genre>/, never trained on): the share of its files called
    its genre, and what they were called."""
    sources = check_sources_from_params(params)
    out: dict = {}
    with atomic_dir(CHECKS) as tmp:
        for name, source in sources.items():
            get_source(source, tmp / name, max_archive_bytes=int(params.data.max_archive_bytes))
    if isinstance(served, ModelsMissing):
        return {"skipped": str(served)}
    for name, source in sources.items():
        r = evaluate_blind(CHECKS / name, served)
        out[name] = {
            "n": r["n_files"],
            "genre": source.genre,
            "expected_genre_share": r["per_genre"][source.genre]["accuracy"],
            "predicted": r["confusion"][source.genre],
        }
        print(f"check source {name}: {out[name]['expected_genre_share']:.3f} called {source.genre}")
    with tracking.run(params, CONCERN, "genre/check_sources") as run:
        if run is not None and out:
            import mlflow

            for name, r in out.items():
                mlflow.log_metric(f"expected_genre_share.{name}", r["expected_genre_share"])
    return out


def main() -> None:
    start = time.perf_counter()
    params = load_params()
    with threadpool_limits(limits=int(params.classifier.n_threads)):
        evaluate(params)
    print(f"evaluate_classifiers: done in {time.perf_counter() - start:.1f} s")


def in_background(params, pool, manifest, files, splits, table, notes, songs) -> tuple:
    """(the CNNs' labels of ``songs`` (task -> its test and validation songs, for the CNNs
    whose stage did not label them) and the blind test as futures, the served genre model's
    permutation importance as ``queued_importance``) from ``pool``'s worker, in that order:
    the only work here that needs torch, the blind folder's parsing and features, and the
    longest single computation, run beside the feature models' scores on the machine's other
    core (the same numbers: each is a function of its arguments). The main process takes
    over the importance's parts the worker has not started: the two finish together."""
    n_threads = int(params.classifier.n_threads)
    cnn: Future | None = None
    if songs:
        mine = notes[notes["file_id"].isin({i for ids in songs.values() for i in ids})]
        roll = params.classifier.cnn.roll
        cnn = pool.submit(cnn_labels, manifest, MODELS, roll, mine, songs, n_threads)
    blind = pool.submit(blind_test, files, splits, BLIND, MODELS)
    entry = manifest["tasks"].get("genre", {})
    importance: Callable | None = None
    if not entry.get("skipped") and entry.get("serve"):
        task = build_task("genre", files, splits, params.classifier)
        model_file = MODELS / entry["models"][entry["serve"]]["file"]
        importance = queued_importance(pool, params, model_file, table, task, n_threads)
    return cnn, blind, importance


def evaluate(params) -> None:
    """Scores, the blind folder, robustness; metrics, figures and the page; with
    ``classifier.n_jobs`` >= 2 ``in_background``'s work in a worker process."""
    files, splits, table, _ = read_tables(with_notes=False)
    manifest = load_manifest(MODELS)
    songs = cnn_songs(manifest, files, splits, params.classifier)
    saved = saved_cnn_labels(manifest, MODELS, songs)  # as the CNN stage labelled them
    songs = {name: ids for name, ids in songs.items() if name not in saved}
    here = cnn_scored_here(manifest)
    tests = read_test_copies(TESTS, with_notes=here)
    # the notes: only for a CNN that predicts here, or test songs to re-encode here
    notes = read_notes() if songs or here or tests is None else None
    if int(params.classifier.get("n_jobs", 1)) < 2:
        evaluate_in_front(
            params, files, splits, table, notes, manifest, saved.get, None, None, tests
        )
        return
    spawn = multiprocessing.get_context("spawn")  # a fresh worker (no forked threads)
    with ProcessPoolExecutor(1, mp_context=spawn) as pool:
        cnn, blind, importance = in_background(
            params, pool, manifest, files, splits, table, notes, songs
        )

        def known(task: str) -> dict[str, str] | None:
            if task in saved:
                return saved[task]
            return cnn.result()[task] if cnn is not None else None

        evaluate_in_front(
            params, files, splits, table, notes, manifest, known, blind, importance, tests
        )


def evaluate_in_front(
    params, files, splits, table, notes, manifest, cnn_known, blind, importance, tests
) -> None:
    """Everything but ``in_background``'s work, which it waits for where it needs it
    (``cnn_known``: task -> its CNN's labels by song, or None where it predicts them;
    ``blind``: the blind test's future, or None to run it here). The served models are
    loaded once, for the scores, the robustness and the check sources."""
    start = time.perf_counter()
    try:
        served = load_served(MODELS)
    except ModelsMissing as exc:
        served = exc
    loaded = {} if isinstance(served, ModelsMissing) else served.by_file()
    with atomic_dir(PLOTS) as plot_dir, atomic_dir(FIGURES) as fig_dir:
        metrics, figures = evaluate_all(
            params,
            manifest,
            MODELS,
            files,
            splits,
            table,
            notes,
            fig_dir,
            plot_dir,
            confusion_figure,
            cnn_known=cnn_known,
            loaded=loaded,
        )
    print(f"evaluate_classifiers: test scores ({time.perf_counter() - start:.1f} s)")
    start = time.perf_counter()
    metrics["blind_test"] = (
        blind.result() if blind is not None else blind_test(files, splits, BLIND, MODELS)
    )
    print(f"evaluate_classifiers: blind folder ({time.perf_counter() - start:.1f} s)")
    metrics["robustness"] = robustness(
        params, manifest, files, splits, table, notes, served, importance, tests
    )
    metrics["check_sources"] = check_sources(params, served)
    write_metrics("reports/metrics/classifiers.json", metrics)
    write_text(
        "reports/classifiers.md",
        render_markdown(metrics, figures)
        + "\n"
        + render_robustness(metrics["robustness"])
        + "\n"
        + render_check_sources(metrics["check_sources"]),
    )


if __name__ == "__main__":
    main()
