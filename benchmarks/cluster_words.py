"""Does a bag of musical words find genre at k = 3 where the music features do not?

The song as a sentence of musical words (``represent/words.py``: melodic step-and-rhythm
figures, bass moves, textures, voicings, articulations, chord degrees; the feature table's
``WORDS_COLUMN``), tf-idf of its 1-3-grams (as the classifier's words model), reduced by
TruncatedSVD and L2-normalised; no labels are used to build it. Measured on the files the
cluster stage clusters (``cluster.sources``), at k = 3, genre NMI and silhouette of:

- each line of words alone (20 SVD components each) and all lines together (30);
- the words beside the stage's 89 music columns (standardised, each block scaled to unit
  total variance per column count, words weighted 0.5 / 1 / 2), raw and through UMAP 2/3-D;
- KMeans, Ward and spectral (nearest-neighbour graph) on each;

and, as the ceiling, a supervised logistic regression telling classical from video game in
5-fold cross-validation on the same words (a clustering rarely beats it; NMI 0.80 at k = 3
needs about 0.93 agreement, see benchmarks/cluster_ceiling.py).

    python benchmarks/cluster_words.py      # ~3 min on 2 cores

Nothing is written; nothing is logged to MLflow.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from functools import partial

import numpy as np
import pandas as pd
from sklearn.cluster import AgglomerativeClustering, KMeans, SpectralClustering
from sklearn.decomposition import TruncatedSVD
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import normalized_mutual_info_score, silhouette_score
from sklearn.model_selection import cross_val_score
from sklearn.preprocessing import StandardScaler, normalize

from midiml.cluster.selection import candidates
from midiml.config import load_params
from midiml.represent.features import WORDS_COLUMN
from midiml.represent.words import LINE_BREAK, ngrams

K = 3
LINES = ("melody", "bass", "texture", "voicing", "articulation", "harmony")


def words_space(text: np.ndarray, dims: int, seed: int) -> np.ndarray:
    """tf-idf of the 1-3-grams -> TruncatedSVD(dims) -> unit rows (cosine geometry)."""
    vec = TfidfVectorizer(
        analyzer=partial(ngrams, n_max=3), min_df=3, sublinear_tf=True, max_features=50000
    )
    x = vec.fit_transform(text)
    return normalize(TruncatedSVD(min(dims, x.shape[1] - 1), random_state=seed).fit_transform(x))


def clusterings(x: np.ndarray, seed: int) -> Iterator[tuple[str, np.ndarray]]:
    yield "kmeans", KMeans(K, n_init=10, random_state=seed).fit_predict(x)
    yield "ward", AgglomerativeClustering(K).fit_predict(x)
    spectral = SpectralClustering(
        K, affinity="nearest_neighbors", n_neighbors=15, random_state=seed
    )
    yield "spectral", spectral.fit_predict(x)


def row(name: str, x: np.ndarray, truth: np.ndarray, seed: int) -> dict[str, object]:
    out: dict[str, object] = {"space": name}
    for method, labels in clusterings(x, seed):
        out[f"{method}_nmi"] = round(normalized_mutual_info_score(truth, labels), 3)
        out[f"{method}_silhouette"] = round(float(silhouette_score(x, labels)), 3)
    return out


def main() -> None:
    import umap

    warnings.filterwarnings("ignore")
    params = load_params()
    seed = int(params.seed)
    features = pd.read_parquet("data/features/features.parquet")
    files = pd.read_parquet("data/interim/files.parquet").set_index("file_id")
    source = files.loc[features["file_id"], "source"].astype(str).to_numpy()
    table = features[np.isin(source, list(params.cluster.sources))].reset_index(drop=True)
    truth = table["genre"].astype(str).to_numpy()
    text = table[WORDS_COLUMN].astype(str).to_numpy()
    print(f"{len(table)} files: {pd.Series(truth).value_counts().to_dict()}")

    rows = []
    lines = [t.split(LINE_BREAK) for t in text]
    for i, name in enumerate(LINES):
        line = np.array([parts[i] if i < len(parts) else "" for parts in lines])
        rows.append(row(f"words: {name}", words_space(line, 20, seed), truth, seed))
    words = words_space(text, 30, seed)
    rows.append(row("words: all lines", words, truth, seed))

    music_cols = [c for c in candidates(table, ["artifacts"]) if c != "key_tonic"]
    music = StandardScaler().fit_transform(table[music_cols].to_numpy(float))
    music = music[:, music.std(axis=0) > 0]
    rows.append(row(f"music columns ({music.shape[1]})", music, truth, seed))
    scaled_words = StandardScaler().fit_transform(words)
    for weight in (0.5, 1.0, 2.0):
        both = np.hstack(
            [
                music / np.sqrt(music.shape[1]),
                weight * scaled_words / np.sqrt(scaled_words.shape[1]),
            ]
        )
        rows.append(row(f"music + words x{weight:g}", both, truth, seed))
        for dims in (2, 3):
            reducer = umap.UMAP(n_components=dims, n_neighbors=30, min_dist=0.0, random_state=seed)
            emb = reducer.fit_transform(both)
            rows.append(row(f"music + words x{weight:g}, UMAP {dims}-D", emb, truth, seed))
    print(pd.DataFrame(rows).to_string(index=False))

    two = truth != "lofi"
    clf = LogisticRegression(max_iter=3000, C=10.0)
    acc = cross_val_score(clf, words[two], truth[two], cv=5).mean()
    print(f"supervised ceiling, classical vs video game on the words (5-fold CV): {acc:.3f}")


if __name__ == "__main__":
    main()
