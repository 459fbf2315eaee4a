"""The tables the classifier stages read and share: the data stages' tables, re-encoded
copies of training songs (their feature rows: a stage output of their own), and another draw
of the synthetic check sources (``data.check_sources``) that stands for their genre when the
served model is chosen.

A re-encoded copy of a song has the id ``<song>#copy<k>`` (``#excerpt<k>`` for a random
excerpt): ``copies.song_ids`` maps it back to its song, whose label it keeps.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from joblib import Parallel, delayed

from midiml.classify.copies import song_ids
from midiml.classify.serving import features_for
from midiml.data.midi import read_user_file
from midiml.data.sources import Source, check_sources_from_params
from midiml.data.synthetic import write_synthetic
from midiml.represent.features import extract_features
from midiml.represent.perturb import perturb_songs


def plain(cfg: Any) -> Any:
    """A config node as plain Python containers (anything else as it is)."""
    from omegaconf import DictConfig, ListConfig, OmegaConf

    return (
        OmegaConf.to_container(cfg, resolve=True)
        if isinstance(cfg, DictConfig | ListConfig)
        else cfg
    )


def feature_kwargs(params: Any) -> dict[str, Any]:
    """The feature stage's parameters that ``extract_features`` takes."""
    fp = plain(params.get("features", {})) or {}
    return {k: fp[k] for k in ("onset_resolution", "grid_tolerance", "onset_divisors") if k in fp}


def read_tables(
    with_notes: bool = True, root: str | Path = "data"
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame | None]:
    """(files, splits, features, notes) as the data stages wrote them; notes only if asked
    (the note table is the large one)."""
    root = Path(root)
    notes = read_notes(root) if with_notes else None
    return (
        pd.read_parquet(root / "interim/files.parquet"),
        pd.read_parquet(root / "interim/splits.parquet"),
        pd.read_parquet(root / "features/features.parquet"),
        notes,
    )


def read_notes(root: str | Path = "data", songs: list[str] | None = None) -> pd.DataFrame:
    """The note table (``interim/notes.parquet``: 4.3 M rows, 2-3 s to read), or only the
    rows of ``songs`` (in the table's order; read with a filter: a third of the time for
    the 373 test songs, where reading all and selecting took 2.6 s)."""
    path = Path(root) / "interim/notes.parquet"
    if songs is None:
        return pd.read_parquet(path)
    if not len(songs):  # pyarrow's filter cannot type an empty list: the columns alone
        import pyarrow.parquet as pq

        return pq.read_schema(path).empty_table().to_pandas()
    return pd.read_parquet(path, filters=[("file_id", "in", list(songs))])


def copies_table(
    params: Any,
    ids: list[str],
    files: pd.DataFrame,
    notes: pd.DataFrame,
    copies: dict,
    melody: dict | None = None,
    excerpts: dict | None = None,
    texture: dict | None = None,
    n_jobs: int = 1,
) -> pd.DataFrame:
    """Feature rows of random re-encodings of songs ``ids`` (``copies[genre]`` per song,
    ``copies['default']`` for other genres); ids ``<song>#copy<k>``, genre kept. A copy of a
    song of genre g first has its chords played in another texture with probability
    ``texture[g]``, then gets a made-up melody with probability ``melody[g]``.

    ``excerpts`` (``{copies, min_s, max_s}``) adds that many random excerpts of every song
    longer than ``min_s`` (any genre; ids ``<song>#excerpt<k>``): other people's files are often
    excerpts and loops, not whole pieces."""

    seed = int(params.seed)
    genre = files.set_index("file_id")["genre"].astype(str)
    most = max(int(v) for v in copies.values())
    melody = {str(k): float(v) for k, v in (melody or {}).items()}
    texture = {str(k): float(v) for k, v in (texture or {}).items()}
    parts: list[tuple[list[str], dict[str, Any]]] = []  # (songs, perturb_songs' keywords)
    for k in range(most):
        chosen = [i for i in ids if k < int(copies.get(genre[i], copies.get("default", 0)))]
        draw = np.random.default_rng(seed + 2000 + k).random(len(chosen))
        with_melody = {
            i for i, u in zip(chosen, draw, strict=True) if u < melody.get(genre[i], 0.0)
        }
        draw = np.random.default_rng(seed + 4000 + k).random(len(chosen))
        with_texture = {
            i for i, u in zip(chosen, draw, strict=True) if u < texture.get(genre[i], 0.0)
        }
        parts.append(
            (
                chosen,
                {
                    "seed": seed + 1000 + k,
                    "suffix": f"#copy{k}",
                    "melody": with_melody,
                    "texture": with_texture,
                },
            )
        )
    ex = dict(excerpts or {})
    if int(ex.get("copies", 0)):
        lo, hi = float(ex.get("min_s", 8.0)), float(ex.get("max_s", 60.0))
        length = files.set_index("file_id")["length_s"].astype(float)
        longer = [i for i in ids if length.get(i, 0.0) > lo]  # shorter ones stay whole
        for k in range(int(ex["copies"])):
            options = {"min_s": lo, "max_s": hi}
            kwargs = {"seed": seed + 3000 + k, "how": "crop", "suffix": f"#excerpt{k}"}
            parts.append((longer, kwargs | {"options": options}))
    parts = [(songs, kwargs) for songs, kwargs in parts if songs]
    # each part draws from its own seed and a song's features depend on that song alone, so
    # the parts run n_jobs at a time and their rows are concatenated in order; the parts
    # with the most songs start first (the first copy of every song and the excerpts, then
    # the lo-fi songs' further copies), so that no large part is left to run alone at the end
    first = sorted(range(len(parts)), key=lambda i: -len(parts[i][0]))
    made = Parallel(n_jobs=n_jobs)(
        delayed(_copies_part)(
            notes[notes["file_id"].isin(set(parts[i][0]))],
            files,
            parts[i][0],
            parts[i][1],
            genre,
            feature_kwargs(params),
        )
        for i in first
    )
    by_part = dict(zip(first, made, strict=True))
    done = [by_part[i] for i in range(len(parts)) if len(by_part[i])]
    return pd.concat(done, ignore_index=True) if done else pd.DataFrame()


def _copies_part(
    notes: pd.DataFrame,
    files: pd.DataFrame,
    songs: list[str],
    kwargs: dict[str, Any],
    genre: pd.Series,
    features: dict[str, Any],
) -> pd.DataFrame:
    """Feature rows of one ``perturb_songs`` call of ``copies_table``."""
    n, f = perturb_songs(notes, files, songs, **kwargs)
    if f.empty:
        return pd.DataFrame()
    f["genre"] = song_ids(f["file_id"]).map(genre)
    return extract_features(n, f, **features)


def copies_as_configured(
    params: Any, ids: list[str], files: pd.DataFrame, notes: pd.DataFrame
) -> pd.DataFrame:
    """``copies_table`` of songs ``ids`` with the copies, melodies, textures and excerpts
    that ``classifier.copies`` asks for (the same rows for training and for evaluation)."""
    recipe = params.classifier.copies
    return copies_table(
        params,
        ids,
        files,
        notes,
        dict(plain(recipe.per_song)),
        plain(recipe.get("melody")),
        plain(recipe.get("excerpts")),
        plain(recipe.get("texture")),
        int(params.classifier.get("n_jobs", 1)),
    )


def synthetic_check_sources(params: Any) -> dict[str, Source]:
    """The check sources (``data.check_sources``) a generator writes: the ones the selection
    can draw again with another seed, never trained on."""
    return {n: s for n, s in check_sources_from_params(params).items() if s.kind == "synthetic"}


def check_sources_genre(params: Any) -> str | None:
    """The one genre of the synthetic check sources (None: there are none)."""
    genres = {s.genre for s in synthetic_check_sources(params).values()}
    if len(genres) > 1:
        raise ValueError(f"data.check_sources (synthetic): one genre expected, not {genres}")
    return genres.pop() if genres else None


def selection_loops(params: Any, classes: list[str]) -> pd.DataFrame | None:
    """Feature rows of the synthetic check sources for choosing the served model, when their
    genre is one of ``classes`` (drawn with ``classifier.check_selection_seed``, so the files
    the evaluate stage reports stay unseen by the choice)."""
    if check_sources_genre(params) not in classes:
        return None
    seed = int(params.classifier.check_selection_seed)
    with tempfile.TemporaryDirectory(prefix="midiml-loops-") as tmp:
        paths = [
            p
            for name, source in synthetic_check_sources(params).items()
            for p in write_synthetic(source, Path(tmp) / name, seed)
        ]
        parsed = [(p.name, read_user_file(p)) for p in paths]
    return features_for(parsed, plain(params.get("features", {})) or {})
