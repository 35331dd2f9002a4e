"""Sampling from last-position logits (pure numpy)."""

from __future__ import annotations

import numpy as np

from proxy.local.sampling import Sampler, Sampling, log_softmax


def logits(values: list[float]) -> np.ndarray:
    return np.asarray(values, dtype=np.float32)


def test_greedy_takes_the_argmax() -> None:
    assert Sampler(Sampling(temperature=0))(logits([0.1, 3.0, 2.9])) == 1


def test_seeded_sampling_is_reproducible_and_spreads() -> None:
    row = logits([1.0, 1.0, 1.0, 1.0])
    a = Sampler(Sampling(temperature=1.0, top_p=1.0, seed=7))
    b = Sampler(Sampling(temperature=1.0, top_p=1.0, seed=7))
    seq_a = [a(row) for _ in range(50)]
    assert seq_a == [b(row) for _ in range(50)]
    assert set(seq_a) == {0, 1, 2, 3}


def test_top_p_keeps_only_the_head() -> None:
    sampler = Sampler(Sampling(temperature=1.0, top_p=0.5, seed=0))
    row = logits([5.0, 0.0, 0.0, 0.0])  # token 0 holds ~95% of the mass
    assert {sampler(row) for _ in range(100)} == {0}


def test_top_k_limits_candidates() -> None:
    sampler = Sampler(Sampling(temperature=5.0, top_p=1.0, top_k=2, seed=0))
    row = logits([3.0, 2.9, 2.8, 2.7, 2.6])
    assert {sampler(row) for _ in range(200)} == {0, 1}


def test_client_params_override_defaults() -> None:
    s = Sampling().with_params({"temperature": 0, "top_p": 0.5, "seed": 3, "stop": ["x"]})
    assert (s.temperature, s.top_p, s.seed, s.top_k) == (0.0, 0.5, 3, 40)
    assert Sampling().with_params({"temperature": None}) == Sampling()


def test_log_softmax_is_normalised_and_stable() -> None:
    out = log_softmax(logits([1000.0, 999.0, -1000.0]))
    assert np.isclose(np.exp(out).sum(), 1.0)
    assert np.isclose(out[0] - out[1], 1.0)
