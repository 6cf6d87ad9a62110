"""Tests of nmfsep.clustering (small synthetic matrices and signals only)."""

from __future__ import annotations

import numpy as np
import pytest

from nmfsep import clustering
from nmfsep.errors import ParameterError

SR = 8000
N_FFT = 256
N_FREQ = N_FFT // 2 + 1


def _two_band_model(n_per_band: int = 6, n_frames: int = 60, seed: int = 0):
    """W whose first columns live in 100-1300 Hz and the others in 2200-3700 Hz; H of two
    independent on/off sources (each band's bases active together)."""
    rng = np.random.default_rng(seed)
    W = np.zeros((N_FREQ, 2 * n_per_band))
    low, high = slice(3, 42), slice(70, 119)
    W[low, :n_per_band] = rng.random((42 - 3, n_per_band)) ** 3
    W[high, n_per_band:] = rng.random((119 - 70, n_per_band)) ** 3
    W /= np.linalg.norm(W, axis=0)
    gate = rng.random((2, n_frames)) < 0.5
    H = rng.random((2 * n_per_band, n_frames)) * 0.2
    H[:n_per_band] += gate[0] * rng.random((n_per_band, n_frames))
    H[n_per_band:] += gate[1] * rng.random((n_per_band, n_frames))
    return W, H


@pytest.mark.parametrize("features", clustering.FEATURES)
def test_two_disjoint_bands_recovered(features: str) -> None:
    W, H = _two_band_model()
    labels = clustering.cluster_bases(
        W, n_clusters=2, H=H, features=features, sr=SR, n_fft=N_FFT, random_state=0
    )
    assert labels.dtype == np.int64 and labels.shape == (12,)
    # deterministic order: cluster 0 = lowest spectral centroid = the low band
    np.testing.assert_array_equal(labels, [0] * 6 + [1] * 6)


def test_order_follows_centroid_not_column_order() -> None:
    W, H = _two_band_model(seed=1)
    perm = np.random.default_rng(3).permutation(W.shape[1])
    labels = clustering.cluster_bases(W[:, perm], H=H[perm], n_clusters=2, sr=SR, n_fft=N_FFT)
    np.testing.assert_array_equal(labels, (perm >= 6).astype(int))


def test_same_seed_same_labels_and_generator_seed() -> None:
    rng = np.random.default_rng(5)
    W = rng.random((N_FREQ, 16))
    H = rng.random((16, 40))
    kw = {"n_clusters": 3, "H": H, "sr": SR, "n_fft": N_FFT}
    a = clustering.cluster_bases(W, random_state=7, **kw)
    b = clustering.cluster_bases(W, random_state=7, **kw)
    np.testing.assert_array_equal(a, b)
    assert set(a.tolist()) == {0, 1, 2}
    c = clustering.cluster_bases(W, random_state=np.random.default_rng(1), **kw)
    d = clustering.cluster_bases(W, random_state=np.random.default_rng(1), **kw)
    np.testing.assert_array_equal(c, d)


def test_degenerate_identical_bases_no_warning_every_cluster_used() -> None:
    W = np.tile(np.linspace(1.0, 0.1, N_FREQ)[:, None], (1, 5))
    H = np.ones((5, 10))
    for features in clustering.FEATURES:
        labels = clustering.cluster_bases(
            W, n_clusters=3, H=H, features=features, sr=SR, n_fft=N_FFT, random_state=0
        )
        assert sorted(set(labels.tolist())) == [0, 1, 2]
    # two distinct spectra, three clusters: still every cluster gets a basis
    W2 = np.concatenate([W[:, :3], W[::-1, :3]], axis=1)
    labels = clustering.cluster_bases(W2, n_clusters=3, features="logspec", sr=SR, n_fft=N_FFT)
    assert sorted(set(labels.tolist())) == [0, 1, 2]


def test_one_cluster_and_errors() -> None:
    W, H = _two_band_model()
    np.testing.assert_array_equal(
        clustering.cluster_bases(W, n_clusters=1, H=H, sr=SR, n_fft=N_FFT), np.zeros(12)
    )
    with pytest.raises(ParameterError, match="13 clusters from 12 bases"):
        clustering.cluster_bases(W, n_clusters=13, H=H, sr=SR, n_fft=N_FFT)
    with pytest.raises(ParameterError):
        clustering.cluster_bases(W, n_clusters=0, H=H, sr=SR, n_fft=N_FFT)
    with pytest.raises(ParameterError, match="features must be one of"):
        clustering.cluster_bases(W, n_clusters=2, features="chroma", sr=SR, n_fft=N_FFT)
    with pytest.raises(ParameterError, match="need the activations"):
        clustering.cluster_bases(W, n_clusters=2, features="mfcc+act", sr=SR, n_fft=N_FFT)
    with pytest.raises(ParameterError, match="n_fft"):
        clustering.cluster_bases(W, n_clusters=2, H=H, sr=SR, n_fft=512)
    with pytest.raises(ParameterError, match="H must have shape"):
        clustering.cluster_bases(W, n_clusters=2, H=H[:3], sr=SR, n_fft=N_FFT)
    with pytest.raises(ParameterError, match="non-negative"):
        clustering.cluster_bases(-W, n_clusters=2, H=H, sr=SR, n_fft=N_FFT)


def test_basis_features_shapes_and_finiteness() -> None:
    W, H = _two_band_model()
    W[:, 0] = 0.0  # an all-zero basis must not produce NaN
    for kind in clustering.FEATURES:
        F = clustering.basis_features(W, H=H, kind=kind, sr=SR, n_fft=N_FFT)
        assert F.shape[0] == 12 and np.all(np.isfinite(F))
    assert clustering.DEFAULT_FEATURES in clustering.FEATURES
    # features do not depend on the gain of a basis
    F1 = clustering.basis_features(W, H=H, kind="logspec", sr=SR, n_fft=N_FFT)
    F2 = clustering.basis_features(W * 3.0, H=H, kind="logspec", sr=SR, n_fft=N_FFT)
    np.testing.assert_allclose(F1, F2, atol=1e-10)


def test_cluster_separation_of_disjoint_spectra_mixture() -> None:
    """End to end: NMF of a two-source mixture with disjoint spectra, cluster, Wiener-mask."""
    from sklearn.decomposition import NMF

    from nmfsep.metrics import si_sdr
    from nmfsep.spectral import STFTConfig, istft, stft

    rng = np.random.default_rng(0)
    n = SR  # 1 s
    t = np.arange(n) / SR
    env = (np.sin(2 * np.pi * 1.5 * t) > 0).astype(float)
    low = env * sum(np.sin(2 * np.pi * f * t) / k for k, f in enumerate((220, 440, 660), 1))
    spec = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1 / SR)
    spec[(freqs < 2500) | (freqs > 3500)] = 0
    high = np.fft.irfft(spec, n) * (1 - 0.7 * env)
    high *= 0.5 * np.std(low) / np.std(high)
    sources = np.stack([low, high])
    config = STFTConfig(n_fft=N_FFT, hop_length=64)
    X = stft(sources.sum(axis=0), config)
    nmf = NMF(n_components=8, init="nndsvda", beta_loss="kullback-leibler", solver="mu",
              max_iter=200, random_state=0)  # fmt: skip
    W = nmf.fit_transform(np.abs(X))
    H = nmf.components_
    labels = clustering.cluster_bases(W, n_clusters=2, H=H, sr=SR, n_fft=N_FFT, random_state=0)
    parts = np.stack([W[:, labels == g] @ H[labels == g] for g in range(2)]) ** 2
    masks = parts / np.maximum(parts.sum(axis=0), 1e-12)
    est = istft(masks * X[None], config, length=n)
    # cluster 0 (lowest centroid) is the low harmonic source: no permutation needed
    assert np.all(np.asarray(si_sdr(sources, est)) > 10)


# ------------------------------------------------------------------------------ mfcc0-or-mod


def _timbre_decoy_model(n_frames: int = 250, seed: int = 0):
    """Source A (bases 0-5): harmonic combs, 4 Hz gated; source B (6-11): smooth, steady.
    Each source has three low-band and three high-band bases, so timbre alone (the band)
    cuts across the sources."""
    rng = np.random.default_rng(seed)
    comb = (np.arange(N_FREQ) % 4 == 0).astype(float) + 0.02
    low, high = np.zeros(N_FREQ), np.zeros(N_FREQ)
    low[3:50], high[60:115] = 1.0, 1.0
    W = np.empty((N_FREQ, 12))
    for k in range(12):
        band = low if k % 6 < 3 else high
        fine = comb if k < 6 else 1.0 + 0.05 * rng.random(N_FREQ)
        W[:, k] = band * fine * rng.uniform(0.8, 1.0, N_FREQ)
    W /= np.linalg.norm(W, axis=0)
    t = np.arange(n_frames) / 62.5
    H = np.empty((12, n_frames))
    H[:6] = (np.maximum(0.0, np.sin(2 * np.pi * 4 * t)) ** 2 + 1e-3) * rng.uniform(
        0.5, 1.5, (6, n_frames)
    )
    H[6:] = rng.uniform(0.9, 1.1, (6, n_frames))
    return W, H


def _same_partition(labels: np.ndarray, truth: np.ndarray) -> bool:
    return bool(np.array_equal(labels, truth) or np.array_equal(labels, 1 - truth))


def test_envelope_correlation_low_for_independent_sources_high_for_a_split_source() -> None:
    W, H = _two_band_model(n_frames=400)
    truth = np.array([0] * 6 + [1] * 6)
    across = np.array([0, 0, 0, 1, 1, 1] * 2)  # each group: half of each source
    assert abs(clustering.envelope_correlation(W, H, truth)) < 0.2
    assert clustering.envelope_correlation(W, H, across) > 0.6
    # constant activations or a single frame carry no evidence: 0
    assert clustering.envelope_correlation(W, np.ones((12, 20)), truth) == 0.0
    assert clustering.envelope_correlation(W, H[:, :1], truth) == 0.0
    three = np.array([0] * 4 + [1] * 4 + [2] * 4)
    assert np.isfinite(clustering.envelope_correlation(W, H, three))


def test_mfcc0_or_mod_keeps_the_partition_with_independent_sources() -> None:
    W, H = _timbre_decoy_model()
    truth = np.array([0] * 6 + [1] * 6)
    kw = {"n_clusters": 2, "H": H, "sr": SR, "n_fft": N_FFT, "frame_rate": 62.5}
    by_timbre = clustering.group_bases(W, method="mfcc0", random_state=0, **kw)
    by_modulation = clustering.group_bases(W, method="modulation", random_state=0, **kw)
    assert not _same_partition(by_timbre, truth)  # the decoy works on mfcc0 alone
    assert _same_partition(by_modulation, truth)
    chosen = clustering.group_bases(W, method="mfcc0-or-mod", random_state=0, **kw)
    np.testing.assert_array_equal(chosen, by_modulation)
    # and it keeps mfcc0 when timbre is right (two bands, two independent gated sources)
    W2, H2 = _two_band_model(n_frames=400)
    kw2 = {**kw, "H": H2}
    np.testing.assert_array_equal(
        clustering.group_bases(W2, method="mfcc0-or-mod", random_state=0, **kw2),
        clustering.group_bases(W2, method="mfcc0", random_state=0, **kw2),
    )
    with pytest.raises(ParameterError, match="need the activations"):
        clustering.group_bases(W, n_clusters=2, method="mfcc0-or-mod", sr=SR, n_fft=N_FFT)
