"""Does a learned, label-free representation find genre? The token Transformer as an encoder.

Each file's REMI/BPE tokens (``data/processed/tokens.npz``, the untransposed row) go through
the trained token Transformer (``models/generators/transformer``, numpy runtime) in chunks of
its context; the per-file embedding is the mean over the file's tokens of a layer's hidden
state (the input embeddings = a bag of tokens, each block's residual stream, the final
layer norm). That embedding is clustered with the cluster stage's comparison grid
(``cluster.compare_feature_sets``: UMAP 2/3-D, nn 50 -> KMeans / GMM, k = number of genres).

The model is genre-conditioned (a genre token before each training window), so how it is
conditioned here matters:

- ``none``: no genre token; each chunk starts with the file's own tokens (BOS first);
- ``mean3``: the chunk is read once after each of the three genre tokens and the three
  embeddings are averaged (the same for every file, so no label is used);
- ``own``: after the file's OWN genre token. This leaks the answer and is shown only to
  measure how much of a clustering would come from the label, never as a result.

It was trained on the ``train`` split of every tokenised source (the clustered songs of that
split included), with their genre labels as input; the script prints the token rows per
split. Two checks say whether it finds genres or collections: the same grid on the files of
the sources that are not clustered (several collections per genre), scored against genre
(k = 2) and against the collection (k = number of collections); and a linear probe for
classical vs video game, trained on those sources and tested on the clustered ones.

    python benchmarks/cluster_embedding.py      # ~7 CPU min on the full profile (embeddings
                                                # 400 CPU s, cached; the grids 33 CPU s)
    python benchmarks/cluster_embedding.py --only clustered   # embed one part (run the two
    python benchmarks/cluster_embedding.py --only other       # in parallel), then all checks
    python benchmarks/cluster_embedding.py --checks other     # one check

Nothing is written but the embeddings cache (``--cache-dir``); nothing is logged to MLflow.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from midiml.cluster.grid import method_specs, reducer_specs, run_grid, standardise, targets_of
from midiml.cluster.search import _as_dict, summary
from midiml.config import load_params
from midiml.data.split import used_files
from midiml.generate.transformer_numpy import NumpyTransformer, _gelu, _layer_norm

MODEL = Path("models/generators/transformer")
TOKENS = Path("data/processed/tokens.npz")
PAD = 0  # the tokenizer's PAD_None
CONDITIONINGS = ("none", "classical", "lofi", "videogame")  # genre token before each chunk
LAYERS = ("embed", "block1", "block2", "block3", "block4", "final")


def hidden_means(net: NumpyTransformer, ids: np.ndarray, lo: np.ndarray, n: int) -> np.ndarray:
    """(batch, layers, d_model): per row of ``ids`` (batch, T), the mean over its positions
    ``lo[b] : lo[b] + n`` of each layer's hidden state (the arithmetic of
    ``NumpyTransformer.forward``, without cache; attention is causal, so a token after the
    span does not change it)."""
    w, h, hd = net.w, net.n_heads, net.head_dim
    bsz, t = ids.shape
    x = w["embed"][ids]
    mask = np.arange(t)[None, :] > np.arange(t)[:, None]
    take = lo[:, None] + np.arange(n)[None]  # (batch, n)
    rows = np.arange(bsz)[:, None]

    def pool(a: np.ndarray) -> np.ndarray:
        return a[rows, take].mean(1)

    out = [pool(x)]
    for i in range(net.n_layers):
        p = f"b{i}."
        qkv = _layer_norm(x, w[p + "ln1_w"], w[p + "ln1_b"]) @ w[p + "qkv"]
        qkv = qkv.reshape(bsz, t, 3, h, hd).transpose(2, 0, 3, 1, 4)
        q, k = net._rope(qkv[0], 0), net._rope(qkv[1], 0)
        s = np.where(mask, np.float32(-np.inf), (q @ k.transpose(0, 1, 3, 2)) / math.sqrt(hd))
        s = np.exp(s - s.max(-1, keepdims=True))
        att = (s / s.sum(-1, keepdims=True)) @ qkv[2]
        x = x + att.transpose(0, 2, 1, 3).reshape(bsz, t, net.d_model) @ w[p + "proj"]
        y = _layer_norm(x, w[p + "ln2_w"], w[p + "ln2_b"]) @ w[p + "fc1"] + w[p + "fc1_b"]
        x = x + _gelu(y) @ w[p + "fc2"] + w[p + "fc2_b"]
        out.append(pool(x))
    out.append(pool(_layer_norm(x, w["ln_w"], w["ln_b"])))
    return np.stack(out, 1)


def check_runtime(net: NumpyTransformer, ids: np.ndarray) -> float:
    """Largest gap between this module's final hidden state (through the tied head) and the
    runtime's logits, on one chunk (copy head off): proves ``hidden_means`` is the model."""
    copy, net.copy = net.copy, False
    try:
        ref = net.forward(ids[None], net.new_cache(1, net.context), 0)[0, -1]
    finally:
        net.copy = copy
    last = np.array([len(ids) - 1])
    mine = hidden_means(net, ids[None], last, 1)[0, -1] @ net.head  # the last position
    return float(np.abs(mine - ref).max())


def embed_files(
    net: NumpyTransformer, tokens: dict, rows: np.ndarray, genre_ids: list[int], max_tokens: int
) -> np.ndarray:
    """(files, conditionings, layers, d_model): token-weighted means over each file's chunks
    (its first ``max_tokens`` tokens) under each conditioning of ``CONDITIONINGS``."""
    step = net.context - 1
    out = np.zeros((len(rows), len(CONDITIONINGS), len(LAYERS), net.d_model), np.float32)
    t0 = time.process_time()
    # one batch per chunk: [chunk, PAD] (no genre token) and [genre, chunk] for each genre
    first = np.array([0, *([1] * len(genre_ids))])
    for n, r in enumerate(rows):
        body = tokens["ids"][tokens["offsets"][r] + 1 : tokens["offsets"][r + 1]][:max_tokens]
        body = np.asarray(body, np.int64)
        acc, total = 0.0, 0
        for s in range(0, len(body), step):
            chunk = body[s : s + step]
            ids = np.stack([np.r_[chunk, PAD]] + [np.r_[g, chunk] for g in genre_ids])
            acc = acc + hidden_means(net, ids, first, len(chunk)) * len(chunk)
            total += len(chunk)
        out[n] = acc / max(total, 1)
        if n % 200 == 0:
            print(f"   {n}/{len(rows)} files, {time.process_time() - t0:.0f} CPU s", flush=True)
    return out


def spaces(emb: np.ndarray, genres: np.ndarray, leak: bool = True) -> dict[str, np.ndarray]:
    """The per-file vectors compared: layer x conditioning (``own`` picks each file's genre;
    the input embeddings do not depend on the conditioning)."""
    own = np.array([CONDITIONINGS.index(g) for g in genres])
    out = {"embed (bag of tokens)": emb[:, 0, 0]}
    for layer in ("block2", "final"):
        li = LAYERS.index(layer)
        out[f"{layer}/none"] = emb[:, 0, li]
        out[f"{layer}/mean3"] = emb[:, 1:, li].mean(1)
        if leak:
            out[f"{layer}/own (leaks)"] = emb[np.arange(len(emb)), own, li]
    return out


def grid(
    x: np.ndarray, truths: dict[str, np.ndarray], ks: list[int], cfg: dict, seed: int
) -> pd.DataFrame:
    """The comparison grid at ``ks`` on the standardised ``x`` (one UMAP fit per reducer),
    scored against the first truth, with an ``nmi_<name>`` column for each other truth."""
    from sklearn.metrics import normalized_mutual_info_score

    check = cfg["compare_feature_sets"]
    names = list(truths)
    res = run_grid(
        standardise(pd.DataFrame(x)),
        truths[names[0]],
        reducer_specs(check["reducers"], targets_of(cfg["reducers"])),
        method_specs(check["methods"], targets_of(cfg["methods"])),
        ks,
        seed,
        keep_labels=lambda row: True,
        n_threads=1,
    )
    t = res.table
    for name in names[1:]:
        t[f"nmi_{name}"] = [
            normalized_mutual_info_score(truths[name], res.labels[p]) for p in t["point"]
        ]
    return t


def best(t: pd.DataFrame, k: int, col: str = "nmi", min_sil: float = -1.0) -> dict | None:
    """The point at ``k`` with the highest ``col`` among silhouettes >= ``min_sil``."""
    ok = t[(t["k"] == k) & (t["silhouette"] >= min_sil)]
    if ok.empty:
        return None
    row = ok.sort_values([col, "silhouette"], ascending=False).iloc[0]
    extra = {c: round(float(row[c]), 4) for c in t.columns if c.startswith("nmi_")}
    return {**summary(row), **extra}


def embeddings(part: str, rows: np.ndarray, tokens: dict, args: argparse.Namespace) -> np.ndarray:
    """The embeddings of ``rows`` (tokens.npz rows), read from the cache folder if there."""
    path = args.cache_dir / f"{part}_{args.max_tokens}.npz"
    fid = tokens["file_ids"][rows]
    if path.exists():
        z = np.load(path)
        if len(z["file_ids"]) == len(fid) and (z["file_ids"] == fid).all():
            return z["emb"]
    meta = json.loads((MODEL / "meta.json").read_text())
    net = NumpyTransformer(dict(np.load(MODEL / meta["weights"])), meta["network"])
    body = tokens["ids"][tokens["offsets"][rows[0]] + 1 : tokens["offsets"][rows[0] + 1]]
    print(f"runtime check: max |logit gap| {check_runtime(net, body[:64]):.2e}")
    first = len(net.w["embed"]) - len(meta["genres"])
    t0 = time.process_time()
    with threadpool_limits(limits=1):
        gids = [first + i for i in range(len(meta["genres"]))]
        emb = embed_files(net, tokens, rows, gids, args.max_tokens)
    print(f"{part}: embeddings {emb.shape}, {time.process_time() - t0:.0f} CPU s", flush=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, emb=emb, file_ids=fid)
    return emb


def per_file(
    emb: np.ndarray, rows: np.ndarray, tokens: dict, max_tokens: int
) -> tuple[np.ndarray, np.ndarray]:
    """One embedding per file: a long song is several rows (32-bar pieces), averaged with
    the weight of the tokens read from each."""
    fid = tokens["file_ids"][rows]
    weight = np.minimum(np.diff(tokens["offsets"])[rows] - 1, max_tokens).astype(np.float64)
    ids, inv = np.unique(fid, return_inverse=True)
    out = np.zeros((len(ids), *emb.shape[1:]), np.float64)
    np.add.at(out, inv, emb * weight[:, None, None, None])
    out /= np.bincount(inv, weights=weight)[:, None, None, None]
    return out.astype(np.float32), ids


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cache-dir", type=Path, default=Path("/tmp/midiml_cluster_embedding"))
    ap.add_argument("--max-tokens", type=int, default=512, help="tokens read per file")
    ap.add_argument("--per-source", type=int, default=120, help="files per other source")
    ap.add_argument("--only", choices=["clustered", "other"], help="embed one part, then stop")
    checks = ["clustered", "other", "probe"]
    ap.add_argument("--checks", nargs="+", choices=checks, default=checks, help="which to run")
    ap.add_argument("--seed", type=int, help="UMAP / clustering seed (default: params seed)")
    args = ap.parse_args()
    params = load_params()
    cfg = _as_dict(params.cluster)
    seed = int(params.seed) if args.seed is None else args.seed

    tokens = dict(np.load(TOKENS))
    files = pd.read_parquet("data/interim/files.parquet").set_index("file_id")
    row0 = np.flatnonzero(tokens["shifts"] == 0)
    keep = used_files(files.reset_index(), cfg.get("sources"))
    clustered = np.isin(tokens["file_ids"][row0], list(keep))
    genres = json.loads((MODEL / "meta.json").read_text())["genres"]
    assert tuple(genres) == CONDITIONINGS[1:], genres
    # the other sources' classical and video game files, at most --per-source each (seeded)
    other = row0[~clustered & np.isin(tokens["genres"][row0], ["classical", "videogame"])]
    src = files.loc[tokens["file_ids"][other], "source"].to_numpy()
    rng = np.random.default_rng(int(params.seed))  # the same files whatever --seed
    other = np.sort(
        np.concatenate(
            [rng.permutation(other[src == s])[: args.per_source] for s in np.unique(src)]
        )
    )
    parts = {"clustered": row0[clustered], "other": other}
    if args.only:
        embeddings(args.only, parts[args.only], tokens, args)
        return

    print(f"model: {MODEL} (conditioned on {genres}); untransposed token rows: {len(row0)}")
    print("token rows per split (the model trained on 'train' rows, genre token as input):")
    for p, r in parts.items():
        print(f"   {p}: {pd.Series(tokens['splits'][r]).value_counts().to_dict()}")
    need = {"clustered", "other"} if "probe" in args.checks else set(args.checks)
    parts = {p: r for p, r in parts.items() if p in need}
    row_parts = {p: embeddings(p, r, tokens, args) for p, r in parts.items()}
    rows = np.concatenate(list(parts.values()))
    emb, fid = per_file(np.concatenate(list(row_parts.values())), rows, tokens, args.max_tokens)
    clustered = np.isin(fid, list(keep))
    genre = files.loc[fid, "genre"].astype(str).to_numpy()
    source = files.loc[fid, "source"].astype(str).to_numpy()
    ci, oi = np.flatnonzero(clustered), np.flatnonzero(~clustered)
    min_sil = float(cfg.get("min_silhouette", 0.5))
    if "clustered" in args.checks:
        check_clustered(emb[ci], genre[ci], cfg, seed, min_sil)
    if "other" in args.checks:
        check_other(emb[oi], genre[oi], source[oi], cfg, seed)
    if "probe" in args.checks:
        probe(emb, genre, ci, oi)


def check_clustered(
    emb: np.ndarray, genre: np.ndarray, cfg: dict, seed: int, min_sil: float
) -> None:
    """1. The grid at k = 3 on the clustered files, per space."""
    print(f"\n1. clustered files ({len(emb)}; k = 3): best NMI, and best with silhouette >= 0.5")
    for name, x in spaces(emb, genre).items():
        t = grid(x, {"genre": genre}, [3], cfg, seed)
        b, w = best(t, 3), best(t, 3, min_sil=min_sil)
        ws = f"{w['nmi']:.3f} (sil {w['silhouette']:.3f}, ARI {w['ari']:.3f})" if w else "none"
        print(
            f"   {name:22s} NMI {b['nmi']:.3f} ARI {b['ari']:.3f} sil {b['silhouette']:.3f} "
            f"[{b['reducer']} {b['method']}] | well-separated {ws}",
            flush=True,
        )


def check_other(
    emb: np.ndarray, genre: np.ndarray, source: np.ndarray, cfg: dict, seed: int
) -> None:
    """2. Genre (k = 2) and collection (k = collections) on the sources not clustered."""
    n_src = len(np.unique(source))
    print(
        f"\n2. other sources ({len(emb)} files, {n_src} collections, 2 genres): genre NMI at "
        f"k = 2; collection NMI at k = {n_src} (and the genre NMI of those clusters)"
    )
    for name, x in spaces(emb, genre, leak=False).items():
        t = grid(x, {"genre": genre, "source": source}, [2, n_src], cfg, seed)
        g, s = best(t, 2), best(t, n_src, "nmi_source")
        print(
            f"   {name:22s} k=2 genre NMI {g['nmi']:.3f} (source NMI {g['nmi_source']:.3f})"
            f" | k={n_src} collection NMI {s['nmi_source']:.3f} (genre NMI {s['nmi']:.3f})",
            flush=True,
        )


def probe(emb: np.ndarray, genre: np.ndarray, ci: np.ndarray, oi: np.ndarray) -> None:
    """3. The supervised ceiling: a linear probe, trained elsewhere and cross-validated here."""
    print("\n3. classical vs video game, supervised logistic regression on the embedding")
    ins = ci[np.isin(genre[ci], ["classical", "videogame"])]
    model = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=3000))
    for name in ("embed (bag of tokens)", "block2/none", "final/none", "final/mean3"):
        x_in, x_out = spaces(emb[ins], genre[ins])[name], spaces(emb[oi], genre[oi])[name]
        transfer = model.fit(x_out, genre[oi]).score(x_in, genre[ins])
        cv = float(np.mean(cross_val_score(model, x_in, genre[ins], cv=5)))
        print(f"   {name:22s} trained on the other sources {transfer:.3f}, 5-fold here {cv:.3f}")


if __name__ == "__main__":
    main()
