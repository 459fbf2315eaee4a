"""Every command answers every malformed file cleanly: one line with the file and the reason.

The corpus (tests/malformed.py) is written byte by byte. Each case goes through `midiml info`,
`classify`, `continue`, `evaluate-blind` and the ingest; a clean answer is exit code 0 or 2
(documented in midiml.cli), no traceback, and for a refused file one line naming it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from midiml.cli import EXIT_BAD_INPUT, app
from midiml.data.ingest import FoundFile, Rules, ingest
from midiml.data.midi import MidiParseError, read_checked
from midiml.generate.train import train_generator
from tests.conftest import tiny_params
from tests.malformed import CASES, write_corpus
from tests.test_classify_cli import models, song  # noqa: F401 (models: a module-scoped fixture)
from tests.test_generators import scale_data

runner = CliRunner()
REPO = Path(__file__).resolve().parents[1]
# Cases a reader must accept (valid, if unusual, MIDI); everything else may be refused.
MUST_READ = {
    "running_status.mid": 8,
    "hanging_notes.mid": 4,
    "drums_only.mid": 16,
    "type2.mid": 8,
    "notes_200k.mid": 200_000,
    "unicode name with spaces é♪.mid": 12,
    "track_without_eot.mid": 6,
    "unknown_chunk.mid": 4,
    "trailing_garbage.mid": 8,
    "track_name_bad_utf8.mid": 4,
    "text_3MB.mid": 4,
    "sixteen_channels.mid": 32,
    "empty_track_first.mid": 4,
    "events_after_end_of_track.mid": 2,
    "same_onset_10k.mid": 10_000,
    "zero_durations.mid": 50,
    "quotes 'and' $dollar;.mid": 6,
    "bad_chunk_length.mid": 4,  # a chunk length past the file's end, every event there
}
# Damaged files: what they still hold is kept (notes), ``strict`` refuses them (reason).
MUST_SALVAGE = {
    "truncated_track.mid": (19, "unreadable MIDI: truncated track 0"),
    "more_tracks_claimed.mid": (4, "unreadable MIDI: truncated file"),
    "sysex_unterminated.mid": (2, "unreadable MIDI: event runs past the end of track 0"),
    "absurd_length.mid": (2, "absurd length"),  # kept up to its impossible delta
    "meta_length_lies.mid": (2, "unreadable MIDI: event runs past the end of track 0"),
}
MUST_REFUSE = {
    "empty.mid": "unreadable MIDI: empty file",
    "not_midi.mid": "unreadable MIDI: not a MIDI file",
    "truncated_header.mid": "unreadable MIDI: truncated header",
    "zero_ticks_per_beat.mid": "unreadable MIDI: zero ticks per beat",
    "zero_tracks.mid": "unreadable MIDI: no tracks",
    "data_byte_over_127.mid": "unreadable MIDI: data byte > 127",
    "no_notes.mid": "no notes",
    "tempo_zero.mid": "unreadable MIDI: tempo of 0",
    "huge_deltas_overflow.mid": "absurd length",
    "tempo_meta_too_short.mid": "unreadable MIDI: bad tempo event",
    "time_signature_empty.mid": "unreadable MIDI: bad time signature event",
    "key_signature_empty.mid": "unreadable MIDI: bad key signature event",
    "too_large.mid": "unreadable MIDI: too large",
}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> dict[str, Path]:
    return write_corpus(tmp_path_factory.mktemp("malformed"))


@pytest.fixture(scope="module")
def markov_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("gen") / "models"
    params = tiny_params()
    train_generator("markov", params.model.generators.markov, params, scale_data(), root / "markov")
    return root


def assert_clean(res, path: Path, seconds: float) -> None:
    """Exit 0 or 2, no traceback, a refusal is one line naming the file; within 10 s."""
    assert "Traceback" not in res.output, res.output
    assert res.exception is None or isinstance(res.exception, SystemExit), repr(res.exception)
    assert res.exit_code in (0, EXIT_BAD_INPUT), res.output
    if res.exit_code == EXIT_BAD_INPUT:
        lines = res.stderr.strip().splitlines()
        assert len(lines) == 1 and path.name in lines[0], res.stderr
    assert seconds < 10, f"{path.name}: {seconds:.1f} s"


def test_the_shared_reader_accepts_valid_files_and_names_the_reason_for_bad_ones(corpus):
    for name, path in corpus.items():
        try:
            parsed = read_checked(path)
        except MidiParseError as exc:
            assert name not in MUST_READ, f"{name}: {exc.reason}"
            assert str(exc).startswith(f"{path}: ")
            if name in MUST_REFUSE:
                assert exc.reason.startswith(MUST_REFUSE[name]), (name, exc.reason)
            continue
        assert name not in MUST_REFUSE, name
        if name in MUST_READ:
            assert parsed.info["n_notes"] == MUST_READ[name], name
            assert parsed.info["salvaged"] == "", name
        if name in MUST_SALVAGE:
            assert parsed.info["n_notes"] == MUST_SALVAGE[name][0], name
            assert parsed.info["salvaged"], name


@pytest.mark.parametrize("name", list(MUST_SALVAGE))
def test_strict_refuses_a_damaged_file_with_its_reason(corpus, name):
    with pytest.raises(MidiParseError) as exc:
        read_checked(corpus[name], Rules(strict=True))
    assert exc.value.reason.startswith(MUST_SALVAGE[name][1])


def test_hanging_notes_are_closed_at_the_end_of_their_track(corpus):
    parsed = read_checked(corpus["hanging_notes.mid"])
    assert parsed.info["hanging_notes"] == 4
    notes = parsed.notes.sort_values("onset_beats")
    # switched on at beats 0..3, the track ends at beat 5: each note lasts until then
    assert notes["onset_beats"].tolist() == [0, 1, 2, 3]
    assert (notes["onset_beats"] + notes["duration_beats"]).tolist() == [5, 5, 5, 5]
    assert read_checked(corpus["running_status.mid"]).info["hanging_notes"] == 0


@pytest.mark.parametrize("name", list(CASES))
def test_info_answers_cleanly(corpus, name):
    t = time.perf_counter()
    res = runner.invoke(app, ["info", str(corpus[name])])
    assert_clean(res, corpus[name], time.perf_counter() - t)
    if name in MUST_READ:
        assert res.exit_code == 0 and f"n_notes: {MUST_READ[name]}" in res.stdout
        assert "salvaged" not in res.stdout and "warning" not in res.stderr
    if name in MUST_SALVAGE:  # the warning line, then the summary with what was lost
        assert res.exit_code == 0 and f"n_notes: {MUST_SALVAGE[name][0]}" in res.stdout
        (warning,) = res.stderr.strip().splitlines()
        assert warning.startswith(f"warning: {corpus[name]}: ")
        assert f"salvaged: {warning.split(': ', 2)[2]}" in res.stdout


@pytest.mark.parametrize("name", list(CASES))
def test_classify_answers_cleanly(corpus, models, name):  # noqa: F811 (the imported fixture)
    t = time.perf_counter()
    res = runner.invoke(app, ["classify", str(corpus[name]), "--models", str(models)])
    assert_clean(res, corpus[name], time.perf_counter() - t)
    if name in MUST_READ:
        assert res.exit_code == 0, res.output


@pytest.mark.parametrize("name", list(CASES))
def test_continue_answers_cleanly(corpus, markov_dir, tmp_path, name):
    out = tmp_path / "out.mid"
    args = ["continue", str(corpus[name]), "-m", "markov", "-s", "4", "-o", str(out)]
    t = time.perf_counter()
    res = runner.invoke(app, [*args, "--models", str(markov_dir)])
    assert_clean(res, corpus[name], time.perf_counter() - t)
    if res.exit_code == 0:
        assert read_checked(out).info["n_notes"] > 0


def test_evaluate_blind_skips_every_bad_file_and_goes_on(corpus, models, tmp_path):  # noqa: F811
    blind = tmp_path / "blind"
    for name, path in corpus.items():
        (blind / "low").mkdir(parents=True, exist_ok=True)
        (blind / "low" / name).write_bytes(path.read_bytes())
    (blind / "low" / "folder.mid").mkdir()  # a folder named like a MIDI file
    for i in range(2):
        song(blind / "high" / f"{i}.mid", "high", seed=200 + i)
    t = time.perf_counter()
    res = runner.invoke(app, ["evaluate-blind", str(blind), "--models", str(models)])
    assert "Traceback" not in res.output and res.exit_code == 0, res.output
    assert time.perf_counter() - t < 30
    skipped = [line for line in res.stderr.splitlines() if line.startswith("skipped ")]
    for name in MUST_REFUSE:
        assert sum(f"low/{name}:" in line for line in skipped) == 1, name
    for name in MUST_READ:
        assert not any(f"low/{name}:" in line for line in skipped), name
    warned = [line for line in res.stderr.splitlines() if line.startswith("warning: ")]
    for name in MUST_SALVAGE:  # scored, with one warning line
        assert not any(f"low/{name}:" in line for line in skipped), name
        assert sum(line.startswith(f"warning: low/{name}: ") for line in warned) == 1, name
    assert "overall" in res.stdout


def test_ingest_quarantines_with_the_same_reasons_and_counts_hanging_notes(corpus):
    found = [FoundFile(p, f"low/{n}", "low", n, "music21") for n, p in corpus.items()]
    t = time.perf_counter()
    files, notes = ingest(found, Rules(), workers=1, progress=False)
    assert time.perf_counter() - t < 60
    assert len(files) == len(corpus)
    row = files.set_index("file_id")
    for name, path in corpus.items():
        r = row.loc[f"low/{name}"]
        try:
            read_checked(path)
            assert r["status"] == "ok", (name, r["reason"])
        except MidiParseError as exc:
            assert r["status"] == "quarantined" and r["reason"] == exc.reason, name
    assert row.loc["low/hanging_notes.mid", "hanging_notes"] == 4
    assert (notes["file_id"] == "low/hanging_notes.mid").sum() == 4


def test_a_real_process_prints_one_line_and_no_traceback(corpus, models, tmp_path):  # noqa: F811
    """The installed entry point, not just CliRunner: rich tracebacks are off."""
    env = {**os.environ, "PYTHONPATH": f"{REPO / 'src'}{os.pathsep}{REPO}"}
    path = corpus["zero_ticks_per_beat.mid"]
    cmd = [sys.executable, "-m", "midiml.cli", "classify", str(path), "--models", str(models)]
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    assert res.returncode == EXIT_BAD_INPUT
    assert res.stderr.strip() == f"error: {path}: unreadable MIDI: zero ticks per beat"
    assert "Traceback" not in res.stdout + res.stderr
