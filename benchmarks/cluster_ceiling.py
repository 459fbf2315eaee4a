"""How much genre structure is there for a clustering to find, and in which columns?

The cluster stage clusters three collections, one per genre, so any column that tells the
collections apart (a file habit) "finds" genre there. This tool measures, after the pipeline
has run (``data/features/features.parquet``, ``data/interim/files.parquet``):

1. the genre NMI of one small grid (``cluster.compare_feature_sets``) on the *other* sources
   (several collections per genre, none clustered by the stage), per column set: every numeric
   column, the music features (no file habits: the stage's columns) and those of them that
   pass the across-sources filter at ``min_genre_over_source: 1.0`` (chosen on these very
   sources, so its number flatters it);
2. a ceiling for classical vs video game in the clustered collections: the accuracy of a
   logistic regression on the music features, trained on the other sources (transfer) and in
   5-fold cross-validation on the clustered collections themselves. A clustering rarely beats
   the classifier that sees the labels; ~0.93 agreement is what NMI 0.80 at k = 3 needs.

    python benchmarks/cluster_ceiling.py        # ~1 min on 2 cores

Nothing is written; nothing is logged to MLflow.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from midiml.cluster.search import feature_set_check
from midiml.cluster.selection import candidates, select_features
from midiml.config import load_params
from midiml.data.split import used_files


def main() -> None:
    cfg = load_params().cluster
    features = pd.read_parquet("data/features/features.parquet")
    files = pd.read_parquet("data/interim/files.parquet")
    keep = used_files(files, cfg.get("sources"))
    music = candidates(features, cfg.features.exclude)
    criterion = {"exclude": list(cfg.features.exclude), "min_genre_over_source": 1.0}
    stable = select_features(features, files, keep, criterion).columns
    numeric = [c for c in features.select_dtypes("number").columns if c != "key_tonic"]
    sets = {"all": numeric, "music": music, "stable": stable}

    held = features[~features["file_id"].isin(keep)].reset_index(drop=True)
    print(f"1. genre NMI on the {len(held)} files of the sources not clustered (k = genres)")
    for name, d in feature_set_check(held, sets, cfg, int(load_params().seed)).items():
        b = d["best_nmi"]
        print(
            f"   {name:7s} {d['n_features']:4d} columns: best NMI {b['nmi']:.3f} ({b['reducer']})"
        )

    two = ["classical", "videogame"]
    inside = features[features["file_id"].isin(keep) & features["genre"].isin(two)]
    outside = held[held["genre"].isin(two)]
    model = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=3000))
    transfer = model.fit(outside[music], outside["genre"]).score(inside[music], inside["genre"])
    cv = float(np.mean(cross_val_score(model, inside[music], inside["genre"], cv=5)))
    print(
        "2. classical vs video game in the clustered collections, music features, supervised: "
        f"trained on the other sources {transfer:.3f}, 5-fold in-collection {cv:.3f}"
    )


if __name__ == "__main__":
    main()
