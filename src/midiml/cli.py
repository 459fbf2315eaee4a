"""The ``midiml`` command: use trained models on your own MIDI files."""

from __future__ import annotations

import typer

app = typer.Typer(
    help="midiml: continue or classify MIDI files with the pipeline's models.",
    no_args_is_help=True,
    add_completion=False,
)


@app.command()
def info(file: str) -> None:
    """Summarise a MIDI file: length, tracks, messages and notes (as the ingest stage sees it)."""
    from midiml.data.midi import MidiParseError, parse_midi

    try:
        parsed = parse_midi(file)
    except (MidiParseError, FileNotFoundError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    for k, v in parsed.info.items():
        typer.echo(f"{k}: {v}")


@app.command("continue")
def continue_(
    file: str = typer.Argument(..., help="MIDI file to continue"),
    model: str = typer.Option(
        "ffnn", "--model", "-m", help="markov | forest | ffnn | lstm_tonedeaf | note_lstm"
    ),
    seconds: float = typer.Option(20.0, "--seconds", "-s", help="length of the continuation"),
    output: str = typer.Option("continued.mid", "--output", "-o", help="MIDI file to write"),
    temperature: float = typer.Option(1.0, "--temperature", "-t", help="0 = always the likeliest"),
    seed: int = typer.Option(0, "--seed", help="random seed of the sampling"),
    top_k: int = typer.Option(0, "--top-k", help="sample among the k likeliest pitches (0 = all)"),
    model_durations: bool = typer.Option(
        False,
        "--model-durations",
        help="durations from the model's own head (lstm_tonedeaf) instead of the prompt's rhythm",
    ),
    models_dir: str = typer.Option("models", "--models-dir", help="where `dvc repro` saved models"),
) -> None:
    """Continue a MIDI file with a trained generator: writes the prompt followed by new music."""
    from midiml.generate.continuation import ContinueError, continue_midi

    try:
        out = continue_midi(
            file, model, seconds, output, models_dir, temperature, seed, top_k, model_durations
        )
    except ContinueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    typer.echo(
        f"{output}: {out['prompt_notes']} prompt notes + {out['new_notes']} new notes "
        f"({out['new_seconds']:.1f} s) from {model}"
    )


@app.command()
def classify(
    file: str = typer.Argument(..., help="a MIDI file"),
    models: str = typer.Option("models/classifiers", help="folder of trained classifiers"),
    as_json: bool = typer.Option(False, "--json", help="print JSON for machine use"),
) -> None:
    """Genre probabilities of FILE (and composer ones when the genre has composers)."""
    import json

    from midiml.classify.serving import ModelsMissing, classify_files, load_served
    from midiml.data.midi import MidiParseError

    try:
        served = load_served(models)
        res = classify_files([file], served)[0]
    except (MidiParseError, ModelsMissing, FileNotFoundError, IsADirectoryError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    if as_json:
        typer.echo(json.dumps(res, indent=2, sort_keys=True))
        return
    typer.echo(
        f"{res['file']}: {res['genre']} (model {res['genre_model']}, "
        f"confidence {res['confidence']:.2f})"
    )
    if res.get("novelty", 0.0) > 1.0:
        typer.echo(
            f"  warning: this file is unlike the training songs (novelty {res['novelty']:.2f} > 1:"
            " farther from its nearest training songs than 99% of them); treat the genre as a guess"
        )
    for name, p in sorted(res["genre_probabilities"].items(), key=lambda kv: -kv[1]):
        typer.echo(f"  {name:<14} {p:.3f}")
    if "composer" in res:
        typer.echo(f"composer: {res['composer']} (model {res['composer_model']})")
        top = sorted(res["composer_probabilities"].items(), key=lambda kv: -kv[1])
        for name, p in top[:5]:
            typer.echo(f"  {name:<14} {p:.3f}")


@app.command("evaluate-blind")
def evaluate_blind_cmd(
    folder: str = typer.Argument(..., help="FOLDER/<genre>/*.mid, one sub-folder per genre"),
    models: str = typer.Option("models/classifiers", help="folder of trained classifiers"),
    as_json: bool = typer.Option(False, "--json", help="print JSON for machine use"),
) -> None:
    """Accuracy and macro-F1 of the genre classifier on new files sorted into genre folders."""
    import json

    from midiml.classify.serving import ModelsMissing, evaluate_blind, load_served

    try:
        res = evaluate_blind(folder, load_served(models))
    except (ModelsMissing, FileNotFoundError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    for skipped in res["skipped_files"]:
        typer.echo(f"skipped {skipped['file']}: {skipped['reason']}", err=True)
    for name in res["unknown_folders"]:
        typer.echo(f"skipped folder {name}/: not a genre the model knows", err=True)
    if as_json:
        typer.echo(json.dumps(res, indent=2, sort_keys=True))
        return
    typer.echo(
        f"genre model: {res['model']}; files {res['n_files']}, skipped {len(res['skipped_files'])}"
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


if __name__ == "__main__":
    app()
