"""Use the trained feature classifiers on MIDI files from anywhere (``classify``, blind tests).

A new file goes through the same path as the pipeline's songs: ``parse_midi`` -> note events
-> ``extract_features`` (with the feature parameters stored at training time) -> the task's
served pipeline. Blind evaluation reads ``FOLDER/<genre>/*.mid``, reports files it cannot
read instead of stopping, and scores the genre classifier per genre and overall.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from midiml.classify.pipelines import FittedModel, load_model
from midiml.classify.words_model import model_input
from midiml.data.midi import MidiParseError, Rules, read_user_file
from midiml.evaluate.classification import scores
from midiml.represent.features import extract_features

MIDI_SUFFIXES = {".mid", ".midi"}
MANIFEST = "manifest.json"


class ModelsMissing(FileNotFoundError):
    """No trained classifiers where they were expected (the stage has not run)."""


@dataclass
class Served:
    """The manifest and the served feature model of each trained task."""

    manifest: dict[str, Any]
    models: dict[str, FittedModel]

    @property
    def feature_params(self) -> dict[str, Any]:
        return self.manifest.get("features", {})

    def by_file(self) -> dict[str, FittedModel]:
        """The served models by their manifest ``file`` (for a caller that loads the other
        models of the folder too: the served ones need not be read twice)."""
        tasks = self.manifest.get("tasks", {})
        return {
            tasks[t]["models"][tasks[t]["serve"]]["file"]: model for t, model in self.models.items()
        }


def load_served(model_dir: str | Path = "models/classifiers") -> Served:
    model_dir = Path(model_dir)
    path = model_dir / MANIFEST
    if not path.exists():
        raise ModelsMissing(f"{path}: no trained classifiers; run `dvc repro select_classifiers`")
    manifest = json.loads(path.read_text())
    models = {}
    for task, entry in manifest.get("tasks", {}).items():
        served = entry.get("serve")
        if served:
            models[task] = load_model(model_dir / entry["models"][served]["file"])
    if "genre" not in models:
        raise ModelsMissing(
            f"{model_dir}: no trained genre classifier "
            f"({manifest.get('tasks', {}).get('genre', {}).get('skipped', '')})"
        )
    return Served(manifest, models)


def features_for(parsed: list[tuple[str, Any]], feature_params: dict[str, Any]) -> pd.DataFrame:
    """Feature rows for parsed files [(file_id, ParsedMidi)], as the features stage makes them."""

    files = pd.DataFrame(
        [{"file_id": fid, "genre": "", "status": "ok", **p.info} for fid, p in parsed]
    )
    notes = pd.concat([p.notes.assign(file_id=fid) for fid, p in parsed], ignore_index=True)
    kwargs = {
        k: feature_params[k]
        for k in ("onset_resolution", "grid_tolerance", "onset_divisors")
        if k in feature_params
    }
    return extract_features(notes, files, **kwargs)


def read_song(path: str | Path, rules: Rules | None = None) -> Any:
    """A user's file, checked with the rules the ingest stage applies (no notes, absurd length;
    a damaged file keeps what it still holds unless ``rules.strict``)."""
    return read_user_file(path, rules)


def _proba(model: FittedModel, table: pd.DataFrame) -> np.ndarray:
    missing = [c for c in model.columns if c not in table.columns]
    if missing:
        raise KeyError(f"features missing for the {model.task} model: {missing[:5]}")
    return model.predict_proba(model_input(table, model.columns))


def classify_files(
    paths: list[str | Path], served: Served, rules: Rules | None = None
) -> list[dict[str, Any]]:
    """Genre probabilities per file, plus composer ones when the genre has composers, and
    what a damaged file lost (``salvaged``, "" for a sound one)."""
    parsed = [(str(p), read_song(p, rules)) for p in paths]
    table = features_for(parsed, served.feature_params)
    genre = served.models["genre"]
    g_proba = _proba(genre, table)
    composer = served.models.get("composer")
    c_proba = _proba(composer, table) if composer is not None else None
    novelty = getattr(genre, "novelty", None)
    unusual = (
        novelty.score(table[genre.numeric_columns].to_numpy(np.float64))
        if novelty is not None
        else None
    )
    out = []
    for i, (fid, song) in enumerate(parsed):
        pred = genre.classes[int(g_proba[i].argmax())]
        res: dict[str, Any] = {
            "file": fid,
            "salvaged": song.info.get("salvaged", ""),
            "genre": pred,
            "genre_probabilities": _named(genre.classes, g_proba[i]),
            "genre_model": genre.model,
            "confidence": round(float(g_proba[i].max()), 4),
        }
        if unusual is not None:
            res["novelty"] = round(float(unusual[i]), 3)  # > 1: unlike the training songs
        if composer is not None and pred in composer.genres:
            res["composer"] = composer.classes[int(c_proba[i].argmax())]
            res["composer_probabilities"] = _named(composer.classes, c_proba[i])
            res["composer_model"] = composer.model
        out.append(res)
    return out


def _named(classes: list[str], p: np.ndarray) -> dict[str, float]:
    return {c: round(float(v), 4) for c, v in zip(classes, p, strict=True)}


def _norm(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def blind_files(folder: str | Path, classes: list[str]) -> tuple[list[tuple[Path, str]], list[str]]:
    """(file, genre) pairs under ``folder/<genre>/`` and sub-folders matching no genre.

    Folder names match the classes ignoring case and punctuation (``Video_Game`` ->
    ``videogame``); MIDI files are found recursively by suffix.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: not a folder")
    lookup = {_norm(c): c for c in classes}
    pairs, unknown = [], []
    for sub in sorted(p for p in folder.iterdir() if p.is_dir()):
        genre = lookup.get(_norm(sub.name))
        if genre is None:
            unknown.append(sub.name)
            continue
        pairs += [
            (f, genre)
            for f in sorted(sub.rglob("*"))
            if f.is_file() and f.suffix.lower() in MIDI_SUFFIXES
        ]
    return pairs, unknown


def evaluate_blind(
    folder: str | Path, served: Served, rules: Rules | None = None
) -> dict[str, Any]:
    """Per-genre and overall accuracy and macro-F1 of the served genre model on ``folder``;
    damaged files that still hold notes are scored and listed with what they lost."""
    genre = served.models["genre"]
    pairs, unknown = blind_files(folder, genre.classes)
    if not pairs:
        raise FileNotFoundError(
            f"{folder}: no MIDI files in genre sub-folders (expected one of "
            f"{', '.join(genre.classes)}; found {', '.join(unknown) or 'none'})"
        )
    parsed, truth, skipped, salvaged = [], [], [], []
    for path, label in pairs:
        rel = str(path.relative_to(folder))
        try:
            song = read_song(path, rules)
            parsed.append((rel, song))
            truth.append(label)
            if song.info.get("salvaged"):
                salvaged.append({"file": rel, "lost": song.info["salvaged"]})
        except (MidiParseError, OSError) as exc:
            reason = exc.reason if isinstance(exc, MidiParseError) else str(exc)
            skipped.append({"file": rel, "reason": reason})
    result: dict[str, Any] = {
        "model": genre.model,
        "n_files": len(pairs),
        "skipped_files": skipped,
        "salvaged_files": salvaged,
        "unknown_folders": unknown,
    }
    if not parsed:
        result.update(per_genre={}, overall={"n": 0, "accuracy": None, "macro_f1": None})
        return result
    table = features_for(parsed, served.feature_params)
    proba = _proba(genre, table)
    pred = np.asarray(genre.classes, dtype=object)[proba.argmax(axis=1)]
    truth_arr = np.asarray(truth, dtype=object)
    per_genre = {}
    for g in sorted(set(truth)):
        m = truth_arr == g
        per_genre[g] = {"n": int(m.sum()), "accuracy": float((pred[m] == g).mean())}
    overall = scores(truth_arr, pred)
    confidence = proba.max(axis=1)
    wrong = [
        {"file": f, "actual": t, "predicted": str(p), "confidence": round(float(c), 4)}
        for (f, _), t, p, c in zip(parsed, truth, pred, confidence, strict=True)
        if t != p
    ]
    result.update(
        per_genre=per_genre,
        overall=overall,
        confusion={  # actual -> predicted -> count, every class of the model
            a: {p: int(((truth_arr == a) & (pred == p)).sum()) for p in genre.classes}
            for a in sorted(set(truth))
        },
        most_confidently_wrong=sorted(wrong, key=lambda w: -w["confidence"])[:10],
        predictions=[
            {"file": f, "actual": t, "predicted": str(p), "confidence": round(float(c), 4)}
            for (f, _), t, p, c in zip(parsed, truth, pred, confidence, strict=True)
        ],
    )
    return result
