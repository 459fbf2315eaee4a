"""DVC stage `evaluate_generators`: every generator on the same test songs.

First and above all, continuations against reality (library: generate/continuation_eval.py,
evaluate/continuation.py; docs/generator-evaluation.md): held-out songs of every genre cut at a
bar line, continued by every saved generator with and without the sampling guards, by the two
references and the random floor, measured against the real continuation, with a C2ST; the best
learned setting is written to models/default_generator.json (`midiml continue`'s default).
Then the next-note models' test-window metrics and samples.

The Transformer's bits per note on the test tokens (numpy, one thread) is computed in a niced
worker process from the start, beside everything else (one stage runs at a time, so the second
core is otherwise idle during the single-threaded parts); the same numbers, in the same place.

Writes reports/metrics/generators.json (reproducible: no timings), reports/generators.md,
figures, piano rolls under reports/samples/ (MIDI and audio under data/samples/: a prompt is an
excerpt of a dataset song, so it stays out of git), and reports/timings/generators.json
(training and evaluation wall times: machine-dependent, git-ignored). Samples and test metrics
are also logged to MLflow.
"""

import json
import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from midiml import tracking
from midiml.config import load_params
from midiml.evaluate import continuation as cm
from midiml.evaluate import generators as ev
from midiml.generate import continuation_eval as ce
from midiml.generate import heldout, losses
from midiml.generate.base import load_generator
from midiml.generate.continuation import (
    DEFAULT_CHOICE_FILE,
    load_continuer,
    saved_models,
    write_midi,
)
from midiml.generate.listening_eval import write_sample_midi
from midiml.generate.train import generator_names, is_neural
from midiml.io import (
    atomic_dir,
    read_timings,
    save_figure,
    write_json,
    write_metrics,
    write_text,
    write_timings,
)
from midiml.report import generators as page
from midiml.represent.audio import render_wav
from midiml.represent.windows import EventData

MODELS = Path("models/generators")
TOKENS = Path("data/processed/tokens.npz")
DEFAULT_CHOICE = MODELS.parent / DEFAULT_CHOICE_FILE


def continuation_examples(
    section: dict, cuts: list, samples: dict, n: int, midi_dir: Path, samples_dir: Path
) -> list[dict[str, str]]:
    """Audio (prompt + real, prompt + the default's continuation) and piano rolls of the
    first cut of the first ``n`` genres."""
    row = (section.get("default") or {}).get("row")
    if row is None:
        return []
    firsts = {}
    for i, cut in enumerate(cuts):
        firsts.setdefault(cut.genre, i)
    examples = []
    for genre, i in list(firsts.items())[:n]:
        cut, new = cuts[i], samples[row][i][0]
        prompt = ce.pitched(cut.prompt)
        stem = f"continuation_{genre}"
        for tag, cont in (("real", cut.real), ("new", new)):
            mid = midi_dir / f"{stem}_{tag}.mid"
            write_sample_midi(prompt, cont, mid)
            render_wav(mid, mid.with_suffix(".wav"))
        title = f"{genre}: {Path(cut.file_id).stem} ({cut.source}), default {row}"
        fig = page.plot_continuation_example(prompt, cut.real, new, cut.cut_s, title)
        save_figure(fig, samples_dir / f"{stem}.png")
        examples.append(
            {
                "title": title,
                "row": row,
                "real_wav": f"../data/samples/{stem}_real.wav",
                "new_wav": f"../data/samples/{stem}_new.wav",
                "png": f"samples/{stem}.png",
            }
        )
    return examples


def continuation_section(
    params, results: dict, midi_dir: Path, samples_dir: Path, timings: dict
) -> tuple[str, list[Path]]:
    """Every saved generator (with and without guards), the references and the floor continue
    the same held-out songs cut at a bar line; measured against the real continuations."""
    cfg = params.model.continuation_eval
    cuts = ce.load_cuts(cfg, "test")
    seeds = [int(cfg.seed) + i for i in range(int(cfg.seeds))]
    samples, rows, seconds = ce.run_rows(
        cuts, MODELS, saved_models(MODELS), seeds, float(cfg.temperature), float(cfg.top_p)
    )
    timings["continuation_seconds"] = {
        k: {t: round(v, 2) for t, v in w.items()} for k, w in seconds.items()
    }
    prompts = [ce.pitched(c.prompt) for c in cuts]
    table = cm.continuation_table(
        prompts, [c.real for c in cuts], [c.genre for c in cuts], [c.seconds for c in cuts],
        samples, int(cfg.seed),
    )  # fmt: skip
    songs: dict[str, dict[str, int]] = {}
    for c in cuts:
        songs.setdefault(c.genre, {}).setdefault(c.source, 0)
        songs[c.genre][c.source] += 1
    section = {
        "settings": {k: cfg[k] for k in ("prompt_bars", "seconds", "seeds")},
        "songs": songs,
        "rows": rows,
        "table": table,
        "default": cm.choose_default(table, rows),
    }
    examples = continuation_examples(
        section, cuts, samples, int(cfg.n_examples), midi_dir, samples_dir
    )
    results["continuation"] = section
    write_json(DEFAULT_CHOICE, section["default"] or {})
    print(page.continuation_table_md(section))
    files = [Path("reports") / e["png"] for e in examples]
    files += [
        Path("data/samples") / Path(e[k]).name for e in examples for k in ("real_wav", "new_wav")
    ]
    song_ids = [c.file_id for c in cuts]
    return page.continuation_markdown(section, examples, song_ids), files


def token_bits() -> dict | None:
    """The Transformer's bits per note on the test tokens (None: no saved token model)."""
    for name in saved_models(MODELS):
        cont = load_continuer(MODELS, name)
        if hasattr(cont, "token_bits"):
            return cont.token_bits(dict(np.load(TOKENS)))
    return None


def main() -> None:
    # A fresh worker (no forked threads), niced: it takes the core the stage leaves idle and
    # yields to the two torch threads of the LSTM continuations, which slow down many times
    # over when a third thread takes their core between steps.
    spawn = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(1, mp_context=spawn, initializer=os.nice, initargs=(10,)) as pool:
        evaluate(pool.submit(token_bits))


def evaluate(bits) -> None:
    """The stage's work; ``bits`` is the future of :func:`token_bits`."""
    started, started_cpu = time.perf_counter(), time.process_time()
    params = load_params()
    sampling = params.model.sampling
    names = generator_names(params)
    neural = [n for n in names if is_neural(params.model.generators[n])]
    data = EventData.load("data/processed/windows.npz")
    reference = ev.reference_values(heldout.test_songs(data))
    _, real, _ = heldout.prompt_segments(
        data, int(sampling.n_prompts), int(sampling.prompt_len), int(sampling.n_new)
    )
    results: dict = {"real": ev.real_metrics(real, reference, len(data.songs("test")))}
    timings, histories = {}, {}
    with atomic_dir("reports/samples") as samples_dir, atomic_dir("data/samples") as midi_dir:
        for name in names:
            model_dir = MODELS / name
            gen = load_generator(model_dir)
            train = json.loads((model_dir / "train.json").read_text())
            prompts, samples = heldout.sample_continuations(gen, data, sampling)
            results[name] = {
                **ev.prediction_metrics(*heldout.test_predictions(gen, data)),
                **ev.sample_metrics(samples, reference),
                "epochs": train["epochs"],
            }
            run = read_timings(f"generator_{name}")  # {} on a fresh clone
            seconds = run.get("train_seconds")
            timings[name] = {
                "train_seconds": None if seconds is None else round(seconds, 2),
                "epochs": train["epochs"],
            }
            if name in neural:
                histories[name] = train["history"]
            files = []
            for i in range(min(int(sampling.n_saved), len(samples))):
                mid = midi_dir / f"{name}_{i}.mid"
                write_midi(np.concatenate([prompts[i], samples[i]]), mid)
                png = samples_dir / f"{name}_{i}.png"
                fig = page.plot_piano_roll(prompts[i], samples[i], f"{name}: continuation {i}")
                save_figure(fig, png)
                files += [mid, png]
            tracking.log_evaluation(
                params, "generation", name, run.get("run_id"), results[name], files
            )
            shown = ("test_bits_per_note", "test_top1", "sample_repeat_rate", "sample_oa_mean")
            print(name, {k: results[name][k] for k in shown})
        cont_md, cont_files = continuation_section(params, results, midi_dir, samples_dir, timings)
        if (transformer := bits.result()) is not None:
            results["transformer"] = transformer
    tracking.log_evaluation(
        params, "generation", "continuation", None, cm.flat(results["continuation"]), cont_files
    )
    ablation_file = Path("models/ffnn_ablation/results.json")
    if ablation_file.exists():
        results["ffnn_ablation"] = json.loads(ablation_file.read_text())
        timings["ffnn_ablation"] = read_timings("ffnn_ablation")
    results["targets"] = ev.targets(results, neural)
    timings["stage_seconds"] = {
        "wall": round(time.perf_counter() - started, 2),
        "cpu": round(time.process_time() - started_cpu, 2),
    }
    write_metrics("reports/metrics/generators.json", results)
    write_timings("generators", {"device": str(params.trainer.accelerator), "models": timings})
    save_figure(page.plot_bits(results, names), "reports/figures/generators_bits.png")
    save_figure(page.plot_curves(histories), "reports/figures/generators_val_curves.png")
    if "ffnn_ablation" in results:
        save_figure(
            page.plot_ablation(results["ffnn_ablation"], results["real"]["sample_repeat_rate"]),
            "reports/figures/generators_ablation.png",
        )
    write_text(
        "reports/generators.md", page.markdown(results, names, losses.__doc__ or "", cont_md)
    )


if __name__ == "__main__":
    main()
