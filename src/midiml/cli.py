"""The ``midiml`` command: use trained models on your own MIDI files.

Exit codes: 0 done; 2 bad input (a file that is missing or unusable, no trained models, a bad
option), answered with one line naming the file and the reason; 1 an unexpected error (a bug),
also one line (``MIDIML_DEBUG=1`` shows the traceback). Folder commands report and skip bad
files and exit 0. Files are checked with the ingest stage's rules (:func:`read_user_file`): a
damaged file keeps what it still holds, the command prints ``warning: <file>: <what was lost>``
and goes on; ``--strict`` refuses such a file instead.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import Any

import typer

EXIT_BAD_INPUT = 2
EXIT_INTERNAL = 1

app = typer.Typer(
    help="midiml: continue or classify MIDI files with the pipeline's models.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


STRICT = typer.Option(
    False, "--strict", help="refuse a damaged file instead of using what it still holds"
)


def warn_salvaged(file: str, salvaged: str) -> None:
    """The one line a damaged file's reader prints: which file, what was lost."""
    if salvaged:
        typer.echo(f"warning: {file}: {salvaged}", err=True)


def one_line_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    """Turn any error a command did not expect into one line naming its input, exit code 1."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except (typer.Exit, typer.Abort, KeyboardInterrupt):
            raise
        except Exception as exc:
            if os.environ.get("MIDIML_DEBUG"):
                raise
            target = kwargs.get("file") or kwargs.get("folder") or ""
            detail = " ".join(str(exc).split())[:300]
            typer.echo(f"error: {target}: {type(exc).__name__}: {detail}", err=True)
            raise typer.Exit(EXIT_INTERNAL) from None

    return wrapper


@app.command()
@one_line_errors
def info(file: str, strict: bool = STRICT) -> None:
    """Summarise a MIDI file: length, tracks, messages and notes (as the ingest stage sees it)."""
    from midiml.data.midi import MidiParseError, Rules, read_user_file

    try:
        parsed = read_user_file(file, Rules(strict=strict))
    except MidiParseError as exc:
        for k, v in exc.info.items():  # readable but unusable: still say what it holds
            typer.echo(f"{k}: {v}")
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(EXIT_BAD_INPUT) from None
    warn_salvaged(file, parsed.info["salvaged"])
    for k, v in parsed.info.items():
        if k != "salvaged" or v:  # said only for a damaged file
            typer.echo(f"{k}: {v}")


@app.command("continue")
@one_line_errors
def continue_(
    file: str = typer.Argument(..., help="MIDI file to continue (it is never modified)"),
    model: str | None = typer.Option(
        None,
        "--model",
        "-m",
        help="a saved generator: markov | forest | ffnn | lstm_tonedeaf | note_lstm | "
        "transformer | vae (default: the one evaluate_generators chose, else markov)",
    ),
    seconds: float = typer.Option(20.0, "--seconds", "-s", help="length of the continuation"),
    bars: float = typer.Option(
        None, "--bars", "-b", help="length in bars of the prompt's metre (overrides --seconds)"
    ),
    variations: int = typer.Option(1, "--variations", "-n", help="write N different files"),
    output: str = typer.Option(
        "continued.mid", "--output", "-o", help="file to write (out_1.mid.. for variations)"
    ),
    temperature: float = typer.Option(1.0, "--temperature", "-t", help="0 = always the likeliest"),
    top_p: float = typer.Option(
        0.95, "--top-p", help="sample from the smallest set with this mass"
    ),
    top_k: int = typer.Option(0, "--top-k", help="sample among the k likeliest pitches (0 = all)"),
    genre: str = typer.Option(
        None, "--genre", help="ask a genre-conditioned model for this genre (others ignore it)"
    ),
    seed: int = typer.Option(0, "--seed", help="random seed of the sampling"),
    plan: str = typer.Option(
        "free",
        "--plan",
        help="token model's bar plans (notes, notes per onset): free = it writes its own; "
        "held = every new bar keeps the prompt's last bars' (others ignore it)",
    ),
    wav: bool = typer.Option(False, "--wav", help="also render each output to a .wav next to it"),
    guards: bool | None = typer.Option(
        None,
        "--guards/--no-guards",
        help="keep new notes in the prompt's key, register and step sizes (sampling "
        "reweighting; default: as chosen with the default model, else on)",
    ),
    models_dir: str = typer.Option(
        "models/generators",
        "--models",
        "--models-dir",  # the older name, still accepted
        help="where `dvc repro` saved the generators",
    ),
    strict: bool = STRICT,
) -> None:
    """Continue a MIDI file: writes your file unchanged plus new tracks that continue it (one
    per instrument the model plays)."""
    from midiml.data.midi import MidiParseError, Rules
    from midiml.generate.continuation import (
        ContinueError,
        continue_file,
        default_choice,
        load_continuer,
    )

    chosen_model, chosen_guards = default_choice(models_dir)
    if model is None:
        model = chosen_model
        guards = chosen_guards if guards is None else guards
    guards = True if guards is None else guards
    try:
        continuer = load_continuer(models_dir, model, top_k=top_k, guards=guards)
        if hasattr(continuer, "plan"):
            continuer.set_plan(plan)
        results = continue_file(
            file,
            continuer,
            output,
            seconds=seconds,
            bars=bars,
            variations=variations,
            temperature=temperature,
            top_p=top_p,
            seed=seed,
            genre=genre,
            wav=wav,
            rules=Rules(strict=strict),
        )
    except (ContinueError, MidiParseError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(EXIT_BAD_INPUT) from None
    warn_salvaged(file, str(results[0]["salvaged"]))
    for res in results:
        extra = f", audio {res['wav']}" if "wav" in res else ""
        typer.echo(
            f"{res['file']}: {res['prompt_notes']} prompt notes + {res['new_notes']} new notes "
            f"from {model}{extra}"
        )


@app.command()
@one_line_errors
def classify(
    file: str = typer.Argument(..., help="a MIDI file"),
    models: str = typer.Option("models/classifiers", help="folder of trained classifiers"),
    as_json: bool = typer.Option(False, "--json", help="print JSON for machine use"),
    strict: bool = STRICT,
) -> None:
    """Genre probabilities of FILE (and composer ones when the genre has composers)."""
    import json

    from midiml.classify.serving import ModelsMissing, classify_files, load_served
    from midiml.data.midi import MidiParseError, Rules

    try:
        served = load_served(models)
        res = classify_files([file], served, Rules(strict=strict))[0]
    except (MidiParseError, ModelsMissing, FileNotFoundError, IsADirectoryError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(EXIT_BAD_INPUT) from None
    warn_salvaged(file, res["salvaged"])
    if as_json:
        typer.echo(json.dumps(res, indent=2, sort_keys=True))
        return
    typer.echo(
        f"{res['file']}: {res['genre']} (model {res['genre_model']}, "
        f"confidence {res['confidence']:.2f})"
    )
    if res.get("novelty", 0.0) > 1.0:
        typer.echo(
            f"  warning: this file is unlike the training songs (novelty {res['novelty']:.3f};"
            " above 1 is farther from its nearest training songs than 99% of them are from"
            " theirs); treat the genre as a guess"
        )
    for name, p in sorted(res["genre_probabilities"].items(), key=lambda kv: -kv[1]):
        typer.echo(f"  {name:<14} {p:.3f}")
    if "composer" in res:
        typer.echo(f"composer: {res['composer']} (model {res['composer_model']})")
        top = sorted(res["composer_probabilities"].items(), key=lambda kv: -kv[1])
        for name, p in top[:5]:
            typer.echo(f"  {name:<14} {p:.3f}")


@app.command("evaluate-blind")
@one_line_errors
def evaluate_blind_cmd(
    folder: str = typer.Argument(..., help="FOLDER/<genre>/*.mid, one sub-folder per genre"),
    models: str = typer.Option("models/classifiers", help="folder of trained classifiers"),
    as_json: bool = typer.Option(False, "--json", help="print JSON for machine use"),
    strict: bool = STRICT,
) -> None:
    """Accuracy and macro-F1 of the genre classifier on new files sorted into genre folders."""
    import json

    from midiml.classify.serving import ModelsMissing, evaluate_blind, load_served
    from midiml.data.midi import Rules

    try:
        res = evaluate_blind(folder, load_served(models), Rules(strict=strict))
    except (ModelsMissing, FileNotFoundError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(EXIT_BAD_INPUT) from None
    for skipped in res["skipped_files"]:
        typer.echo(f"skipped {skipped['file']}: {skipped['reason']}", err=True)
    for kept in res["salvaged_files"]:
        warn_salvaged(kept["file"], kept["lost"])
    for name in res["unknown_folders"]:
        typer.echo(f"skipped folder {name}/: not a genre the model knows", err=True)
    if as_json:
        typer.echo(json.dumps(res, indent=2, sort_keys=True))
        return
    typer.echo(
        f"genre model: {res['model']}; files {res['n_files']}, skipped "
        f"{len(res['skipped_files'])}, damaged but used {len(res['salvaged_files'])}"
    )
    for genre, r in res["per_genre"].items():
        typer.echo(f"  {genre:<14} n={r['n']:<4} accuracy {r['accuracy']:.3f}")
    o = res["overall"]
    if o["n"]:
        typer.echo(
            f"overall        n={o['n']:<4} accuracy {o['accuracy']:.3f} "
            f"macro-F1 {o['macro_f1']:.3f}"
        )
        classes = list(next(iter(res["confusion"].values())))
        typer.echo("confusion (rows actual, columns predicted):")
        typer.echo("  " + " " * 14 + "".join(f"{c[:12]:>13}" for c in classes))
        for actual, row in res["confusion"].items():
            typer.echo(f"  {actual:<14}" + "".join(f"{row[c]:>13}" for c in classes))
        if res["most_confidently_wrong"]:
            typer.echo("most confidently wrong:")
            for w in res["most_confidently_wrong"]:
                typer.echo(
                    f"  {w['confidence']:.2f} {w['actual']} -> {w['predicted']}: {w['file']}"
                )
    else:
        typer.echo("overall: no readable files")


@app.command()
def interpolate(
    file_a: str = typer.Argument(..., help="first song (the morph starts here)"),
    file_b: str = typer.Argument(..., help="second song (the morph ends here)"),
    output: str = typer.Option("interpolated.mid", "--output", "-o", help="MIDI file to write"),
    steps: int = typer.Option(5, "--steps", help="segments from A to B (at least 2)"),
    segment_seconds: float = typer.Option(8.0, "--segment-seconds", help="length of each"),
    model_dir: str = typer.Option(
        "models/generators/vae", "--model-dir", help="where `dvc repro` saved the VAE"
    ),
) -> None:
    """Morph between two songs through the roll VAE's latent space: writes one short MIDI."""
    from midiml.generate.vae_use import VaeUseError, interpolate_files

    try:
        out = interpolate_files(file_a, file_b, output, steps, segment_seconds, model_dir)
    except VaeUseError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    typer.echo(f"{output}: {out['notes']} notes, {out['seconds']:.1f} s in {out['steps']} steps")


if __name__ == "__main__":
    app()
