"""Variational Bayesian NMF (nmfsep.bayes) and the ``factoriser="vb"`` cluster path."""

from __future__ import annotations

import numpy as np
import pytest
from _signals import SR, hiss, tones

from nmfsep.bayes import (
    LEVEL,
    candidate_components,
    fit_vb_nmf,
    select_vb_nmf,
)
from nmfsep.errors import ParameterError
from nmfsep.options import ClusterOptions
from nmfsep.separation import cluster_separate


def _poisson_data(seed: int = 0, k: int = 4, f: int = 40, t: int = 300) -> tuple[np.ndarray, ...]:
    """Counts drawn from the model itself: K Gamma-distributed bases and activations."""
    rng = np.random.default_rng(seed)
    W = rng.gamma(1.0, 1.0, (f, k))
    H = rng.gamma(1.0, 5.0, (k, t))
    return rng.poisson(W @ H).astype(np.float32), W @ H


@pytest.mark.parametrize("level", [None, LEVEL])
def test_bound_never_decreases(level: float | None) -> None:
    V, _ = _poisson_data(1)
    V[:, 50:60] = 0.0  # silent frames and a silent bin on the way
    V[7] = 0.0
    r = fit_vb_nmf(V, n_components=6, level=level, max_iter=150, tol=0, check_every=1,
                   random_state=0)  # fmt: skip
    assert r.n_iter == 150 and r.bounds.size == 151
    gains = np.diff(r.bounds)
    # float32 products, float64 sums: a rounding-sized slack only
    assert gains.min() >= -1e-5 * abs(r.bounds[-1]), gains.min()
    assert r.bounds[-1] > r.bounds[1] > r.bounds[0]


def test_bound_chooses_the_true_number_of_bases() -> None:
    V, _ = _poisson_data(0)
    r = select_vb_nmf(V, candidates=(2, 3, 4, 6, 8, 12), level=None, max_iter=600, tol=1e-6,
                      check_every=5, random_state=0)  # fmt: skip
    best = max(r.candidates, key=r.candidates.__getitem__)
    assert r.n_components == best == 4, r.candidates
    # the bound rises up to the true count and falls after it (each extra basis costs more
    # in its prior than it explains of the Poisson noise)
    ks = sorted(r.candidates)
    bounds = [r.candidates[k] for k in ks]
    assert bounds[0] < bounds[1] < bounds[2] > bounds[3] > bounds[4] > bounds[5], bounds


def test_reconstruction_matches_the_data() -> None:
    V, truth = _poisson_data(2)
    r = fit_vb_nmf(V, n_components=4, level=None, max_iter=400, tol=1e-7, random_state=0)
    model = r.W @ r.H
    assert r.W.dtype == r.H.dtype == np.float32
    assert r.W.shape == (40, 4) and r.H.shape == (4, 300)
    np.testing.assert_allclose(np.linalg.norm(r.W, axis=0), 1.0, rtol=1e-5)
    # closer to the noiseless truth than the Poisson noise is: the noise is not fitted
    assert np.abs(model - truth).mean() < 0.5 * np.abs(V - truth).mean()
    np.testing.assert_allclose(model.sum(), V.sum(), rtol=0.02)
    # the scaled data are fitted at their own scale, results at the data's
    scaled = fit_vb_nmf(V * 1e-3, n_components=4, max_iter=400, tol=1e-7, random_state=0)
    assert scaled.scale == pytest.approx(LEVEL / float(V.mean() * 1e-3), rel=1e-5)
    np.testing.assert_allclose((scaled.W @ scaled.H).sum(), V.sum() * 1e-3, rtol=0.02)


def test_silence_gives_finite_zero_activations() -> None:
    V, _ = _poisson_data(3)
    V[:, :40] = 0.0
    r = fit_vb_nmf(V, n_components=5, max_iter=60, random_state=0)
    assert np.isfinite(r.W).all() and np.isfinite(r.H).all() and np.isfinite(r.bounds).all()
    # a silent frame's posterior mean is its prior mean, far below a sounding frame's
    assert r.H[:, :40].sum(axis=0).max() < 0.05 * np.median(r.H[:, 40:].sum(axis=0))
    # all silent: nothing to scale, still finite
    z = fit_vb_nmf(np.zeros((10, 20), np.float32), n_components=3, max_iter=20, random_state=0)
    assert np.isfinite(z.W).all() and np.isfinite(z.H).all() and np.isfinite(z.bound)


def test_seeded_and_reproducible() -> None:
    V, _ = _poisson_data(4)
    V = V + np.random.default_rng(9).random(V.shape).astype(np.float32)  # not low rank
    a = select_vb_nmf(V, candidates=(3, 5), max_iter=40, random_state=7)
    b = select_vb_nmf(V, candidates=(3, 5), max_iter=40, random_state=7)
    np.testing.assert_array_equal(a.W, b.W)
    np.testing.assert_array_equal(a.H, b.H)
    assert a.candidates == b.candidates


def test_parameter_errors() -> None:
    V, _ = _poisson_data(5)
    for bad in (
        {"n_components": 0},
        {"n_components": 3, "shape_W": 0.0},
        {"n_components": 3, "level": -1.0},
        {"n_components": 3, "max_iter": -1},
        {"n_components": 3, "tol": float("nan")},
    ):
        with pytest.raises(ParameterError):
            fit_vb_nmf(V, **bad)  # type: ignore[arg-type]
    with pytest.raises(ParameterError):
        fit_vb_nmf(-V, n_components=2)
    with pytest.raises(ParameterError):
        fit_vb_nmf(np.full((3, 3), np.nan), n_components=2)
    with pytest.raises(ParameterError):
        select_vb_nmf(V, candidates=())
    assert candidate_components(32) == (8, 16, 24, 32, 48)
    assert candidate_components(4, minimum=2) == (2, 3, 4, 6)


def test_cluster_options_check_the_factoriser() -> None:
    assert ClusterOptions().factoriser == "mu"
    assert ClusterOptions(factoriser="vb").factoriser == "vb"
    with pytest.raises(ParameterError, match="factoriser must be one of mu, vb"):
        ClusterOptions(factoriser="ard")
    with pytest.raises(ParameterError, match="beta 1"):
        ClusterOptions(factoriser="vb", beta="is")


def test_cluster_with_vb_separates_tones_from_hiss() -> None:
    low, high = tones(3.0, seed=0), hiss(3.0, seed=1)
    mix = low + high
    result, fitted = cluster_separate(mix, SR, n_sources=2, n_components=8, factoriser="vb",
                                      max_iter=80)  # fmt: skip
    record = fitted.metadata["training"]["cluster"]
    assert record["factoriser"] == "vb"
    assert set(record["vb_bounds"]) == {"2", "4", "6", "8", "12"}
    assert str(record["n_components"]) == max(record["vb_bounds"], key=record["vb_bounds"].get)
    total = sum(result.sources.values())
    np.testing.assert_allclose(np.ravel(total), mix, atol=2e-5)
    est = np.ravel(result.sources["source1"])
    err = float(np.sum((est - low) ** 2))
    gain = 10 * np.log10(np.sum(high**2) / err)  # SDR of the estimate minus the mixture's
    assert gain > 1.0, gain
