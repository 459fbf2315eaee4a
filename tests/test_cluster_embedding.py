"""The token model as an encoder (benchmarks/cluster_embedding.py): its pooled hidden states
are the runtime's own forward pass, and a long song's pieces are averaged by tokens read."""

from __future__ import annotations

import numpy as np

from midiml.generate.transformer_numpy import NumpyTransformer
from tests.conftest import load_script


def _net(seed: int = 0) -> NumpyTransformer:
    rng = np.random.default_rng(seed)
    d, v, layers = 16, 30, 2
    w = {"embed": rng.normal(size=(v, d)), "ln_w": np.ones(d), "ln_b": np.zeros(d)}
    for i in range(layers):
        p = f"b{i}."
        w |= {
            p + "ln1_w": np.ones(d), p + "ln1_b": np.zeros(d), p + "ln2_w": np.ones(d),
            p + "ln2_b": np.zeros(d), p + "qkv": rng.normal(size=(d, 3 * d)) * 0.2,
            p + "proj": rng.normal(size=(d, d)) * 0.2, p + "fc1": rng.normal(size=(d, 4 * d)) * 0.2,
            p + "fc1_b": np.zeros(4 * d), p + "fc2": rng.normal(size=(4 * d, d)) * 0.2,
            p + "fc2_b": np.zeros(d),
        }  # fmt: skip
    config = {"n_layers": layers, "n_heads": 2, "d_model": d, "context": 32, "vocab_size": v}
    return NumpyTransformer(w, config)


def test_pooled_hidden_states_are_the_runtimes_forward_pass():
    tool = load_script("benchmarks/cluster_embedding.py")
    net = _net()
    ids = np.random.default_rng(1).integers(0, 30, size=20)
    assert tool.check_runtime(net, ids) < 1e-4
    # causal: a token after the pooled span changes nothing; a batch row equals it alone
    alone = tool.hidden_means(net, ids[None, :12], np.array([0]), 12)
    padded = tool.hidden_means(net, np.stack([ids[:13], ids[:13]]), np.array([0, 0]), 12)
    np.testing.assert_allclose(padded[0], alone[0], atol=1e-5)
    assert padded.shape == (2, net.n_layers + 2, net.d_model)


def test_pieces_of_a_song_are_averaged_by_tokens_read():
    tool = load_script("benchmarks/cluster_embedding.py")
    tokens = {"file_ids": np.array(["a", "a", "b"]), "offsets": np.array([0, 11, 1011, 1061])}
    emb = np.zeros((3, 1, 1, 1), np.float32)
    emb[:, 0, 0, 0] = [1.0, 3.0, 5.0]
    out, ids = tool.per_file(emb, np.arange(3), tokens, max_tokens=30)
    assert list(ids) == ["a", "b"]
    # "a": 10 and min(999, 30) tokens -> (10 * 1 + 30 * 3) / 40
    np.testing.assert_allclose(out[:, 0, 0, 0], [2.5, 5.0])
