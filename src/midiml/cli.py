"""The ``midiml`` command: use trained models on your own MIDI files."""

from __future__ import annotations

import typer

app = typer.Typer(help="midiml: continue or classify MIDI files with the pipeline's models.",
                  no_args_is_help=True, add_completion=False)


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


if __name__ == "__main__":
    app()
