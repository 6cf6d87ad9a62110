"""The tracked gain (nmfsep.tracking): the noise tracker, the decision-directed gain, and the
engine path that uses them (``SeparateOptions(gain="tracked")``)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from _signals import SR, hiss, tone_hiss_model, tones

from nmfsep.engine import SeparationPlan, Separator
from nmfsep.errors import ParameterError
from nmfsep.metrics import bss_eval
from nmfsep.model import NMFModel
from nmfsep.options import SeparateOptions
from nmfsep.separation import separate
from nmfsep.tracking import (
    TrackerSettings,
    blend_weight,
    dd_gain,
    min_statistics,
    running_min,
    smooth,
    tracked_masks,
)


def _smooth_loop(P: np.ndarray, alpha: float) -> np.ndarray:
    out = np.empty_like(P)
    acc = P[:, : min(P.shape[1], 8)].mean(axis=1)
    for t in range(P.shape[1]):
        acc = alpha * acc + (1 - alpha) * P[:, t]
        out[:, t] = acc
    return out


def _dd_loop(P: np.ndarray, lam: np.ndarray, alpha: float, xi_min_db: float) -> np.ndarray:
    """Ephraim & Malah's recursion written out frame by frame and bin by bin (the reference)."""
    xi_min = 10 ** (xi_min_db / 10)
    G = np.empty(P.shape)
    for f in range(P.shape[0]):
        prev = 0.0
        for t in range(P.shape[1]):
            gamma = P[f, t] / lam[f, t]
            xi = max(alpha * prev + (1 - alpha) * max(gamma - 1.0, 0.0), xi_min)
            G[f, t] = xi / (1 + xi)
            prev = G[f, t] ** 2 * gamma
    return G


def test_smooth_is_the_first_order_recursion() -> None:
    from scipy.signal import lfilter

    P = np.random.default_rng(0).exponential(size=(5, 40)).astype(np.float32)
    np.testing.assert_allclose(smooth(P, 0.7), _smooth_loop(P, 0.7), rtol=1e-5)
    zi = 0.7 * P[:, :8].mean(axis=1, keepdims=True)
    np.testing.assert_allclose(smooth(P, 0.7), lfilter([0.3], [1, -0.7], P, zi=zi)[0], rtol=1e-5)
    assert smooth(P[:, :0], 0.7).shape == (5, 0)


@pytest.mark.parametrize("T", [1, 2, 7, 47, 48, 301])
@pytest.mark.parametrize("size", [1, 2, 3, 47, 48, 500])
def test_running_min_is_scipys_minimum_filter(T: int, size: int) -> None:
    from scipy.ndimage import minimum_filter1d

    S = np.random.default_rng(T * 1000 + size).uniform(size=(3, T)).astype(np.float32)
    expected = minimum_filter1d(S, size=min(size, T), axis=-1)
    np.testing.assert_array_equal(running_min(S, size), expected)


def test_min_statistics_finds_the_level_of_stationary_noise() -> None:
    """White Gaussian noise of PSD 3 under loud bursts: the bias-corrected minimum tracks 3."""
    rng = np.random.default_rng(1)
    T = 2000
    z = rng.standard_normal((64, T)) + 1j * rng.standard_normal((64, T))
    P = (3.0 / 2.0) * np.abs(z) ** 2  # exponential periodogram bins of mean 3
    P[:, 500:560] += 300.0  # a burst (speech) the tracker must not follow
    lam = min_statistics(P.astype(np.float32), alpha=0.5, frames=150)
    assert 2.0 < float(np.median(lam)) < 4.5
    assert float(lam[:, 530].mean()) < 10.0  # the burst is not noise


def test_dd_gain_matches_the_reference_and_is_bounded() -> None:
    rng = np.random.default_rng(2)
    lam = rng.uniform(0.5, 2.0, size=(6, 50))
    P = lam * rng.exponential(size=(6, 50)) * np.where(rng.random((6, 50)) < 0.3, 30.0, 1.0)
    G = dd_gain(P.astype(np.float32), lam.astype(np.float32), alpha=0.9, xi_min_db=-15.0)
    np.testing.assert_allclose(G, _dd_loop(P, lam, 0.9, -15.0), rtol=1e-4, atol=1e-6)
    floor = 10**-1.5 / (1 + 10**-1.5)
    assert G.min() >= floor - 1e-6 and G.max() < 1.0
    # pure noise is attenuated, a strong steady tone passes
    noise_only = dd_gain(lam.astype(np.float32), lam.astype(np.float32), alpha=0.9, xi_min_db=-15)
    loud = dd_gain(1000 * lam.astype(np.float32), lam.astype(np.float32), alpha=0.9, xi_min_db=-15)
    assert noise_only.mean() < 0.1 and loud[:, 5:].mean() > 0.99


def test_blend_weight_goes_from_nmf_to_tracker() -> None:
    s = TrackerSettings(blend_mid_db=5.0, blend_width_db=10.0)
    assert blend_weight(-20, s) == 1.0 and blend_weight(5, s) == 0.5 and blend_weight(30, s) == 0.0
    with pytest.raises(ParameterError, match="blend"):
        TrackerSettings(blend="median")


def test_local_blend_uses_the_tracker_where_the_nmf_says_target() -> None:
    """A low-SNR block (block weight 1: the NMF's noise estimate everywhere) in which the NMF
    calls a patch of plain noise "target": the block blend passes it (the NMF's noise estimate
    there is tiny), the local blend takes the tracker's estimate there and attenuates it;
    elsewhere the two agree."""
    rng = np.random.default_rng(4)
    V = rng.uniform(0.5, 1.5, size=(16, 200)).astype(np.float32)
    m0 = np.full(V.shape, 0.05, np.float32)
    m0[8:12, 50:90] = 0.95  # noise the NMF takes for the target
    masks = np.stack([m0, 1 - m0])
    block = tracked_masks(masks, V, hop_seconds=0.02, settings=TrackerSettings(blend="block"))
    local = tracked_masks(masks, V, hop_seconds=0.02, settings=TrackerSettings(blend="local"))
    patch = (slice(8, 12), slice(60, 90))
    assert block[0][patch].mean() > 0.8 and local[0][patch].mean() < 0.5
    rest = (slice(0, 8), slice(0, 200))
    np.testing.assert_allclose(local[0][rest], block[0][rest], atol=1e-5)


@pytest.mark.parametrize("blend", ["block", "local"])
@pytest.mark.parametrize("n_sources", [2, 3])
def test_tracked_masks_sum_to_one_and_handle_silence(n_sources: int, blend: str) -> None:
    rng = np.random.default_rng(3)
    raw = rng.uniform(size=(n_sources, 33, 80)).astype(np.float32)
    masks = raw / raw.sum(axis=0)
    V = rng.uniform(0.1, 2.0, size=(33, 80)).astype(np.float32)
    settings = TrackerSettings(blend=blend)
    out = tracked_masks(masks, V, hop_seconds=0.016, settings=settings)
    assert out.shape == masks.shape and np.isfinite(out).all() and out.min() >= 0
    np.testing.assert_allclose(out.sum(axis=0), 1.0, atol=1e-5)
    if n_sources == 3:  # the others keep their proportions
        np.testing.assert_allclose(out[1] / out[2], masks[1] / masks[2], rtol=1e-4)
    for silent in (np.zeros_like(V), np.pad(V[:, :40], ((0, 0), (0, 40)))):
        s = tracked_masks(masks, silent, hop_seconds=0.016, settings=settings)
        assert np.isfinite(s).all()
        np.testing.assert_allclose(s.sum(axis=0), 1.0, atol=1e-5)


@pytest.fixture(scope="module")
def model() -> NMFModel:
    return tone_hiss_model()


def test_tracked_gain_in_the_engine(model: NMFModel) -> None:
    """The sources still sum to the mixture, silence stays silent and finite, chunked = whole,
    and a voice in steady hiss is separated. (On these disjoint synthetic bands the Wiener
    masks are near perfect, 48 dB; the tracked gain's smoothing and floor cap it near 20 dB.
    Its gain on real recordings is measured in bench/generalise.py.)"""
    voice = tones(4.0, seed=7)
    y = (voice + 2.0 * hiss(4.0, seed=8))[np.newaxis]
    opts = {"gain": "tracked", "free_components": 2, "free_source": "hiss", "mask_power": 1.0}
    res = separate(y, SR, model, **opts)
    assert res.settings["gain"] == "tracked"
    np.testing.assert_allclose(sum(res.sources.values()), y, atol=1e-5)
    wiener = separate(y, SR, model, **{**opts, "gain": "wiener"})
    assert "gain" not in wiener.settings
    sdr = {
        k: float(bss_eval(voice, r.sources["voice"][0])["sdr"][0])
        for k, r in (("tracked", res), ("wiener", wiener))
    }
    mix_sdr = float(bss_eval(voice, y[0])["sdr"][0])
    assert sdr["tracked"] > mix_sdr + 10 and sdr["wiener"] > mix_sdr + 10, (sdr, mix_sdr)
    silent = separate(np.zeros((1, SR), np.float32), SR, model, gain="tracked")
    assert all(np.isfinite(v).all() and not v.any() for v in silent.sources.values())
    sep = Separator(model, sr=SR, options=SeparateOptions(gain="tracked"), block_seconds=1.0)
    parts: dict[str, list[np.ndarray]] = {n: [] for n in sep.names}
    for i in range(0, y.shape[1], 777):
        for name, out in sep.process(y[:, i : i + 777].T).items():
            parts[name].append(out)
    for name, out in sep.flush().items():
        parts[name].append(out)
    whole = separate(y, SR, model, gain="tracked", block_seconds=1.0)
    for name in sep.names:
        np.testing.assert_allclose(np.concatenate(parts[name]).T, whole.sources[name], atol=1e-5)


def test_gain_is_checked_and_recommendable(model: NMFModel) -> None:
    with pytest.raises(ParameterError, match="gain"):
        SeparateOptions(gain="loud")
    recommending = dataclasses.replace(model)
    recommending.metadata = {**model.metadata, "separation": {"gain": "tracked"}}
    assert SeparationPlan.create(recommending, sr=SR).options.gain == "tracked"
    explicit = SeparateOptions(gain="wiener")
    assert SeparationPlan.create(recommending, sr=SR, options=explicit).options.gain == "wiener"
    assert SeparationPlan.create(model, sr=SR).options.gain == "wiener"
