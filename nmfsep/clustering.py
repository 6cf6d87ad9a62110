"""Group the bases of an NMF of a mixture into sources (unsupervised separation).

Each basis (a column of ``W``) is described by a feature vector -- the shape of its spectrum,
its timbre (MFCCs), optionally joined with how its activation (the matching row of ``H``)
moves over time -- and the feature vectors are grouped with scikit-learn's seeded
:class:`~sklearn.cluster.KMeans`. Labels are then renumbered deterministically by spectral
centroid (see :func:`cluster_bases`).

Feature kinds (:data:`FEATURES`):

``"logspec"``
    Log of the basis spectrum on a mel-warped frequency axis (a triangular filterbank, which
    smooths the bins and gives low frequencies their perceptual weight), minus its mean over
    frequency (gain invariance), scaled to unit L2 norm.
``"mfcc"``
    Mel-frequency cepstral coefficients of each basis treated as a magnitude spectrum
    (power = magnitude squared, mel filterbank, dB, orthonormal DCT-II), coefficients
    1..n_mfcc (c0 -- the overall level -- dropped), scaled to unit L2 norm.
``"logspec+act"`` / ``"mfcc+act"``
    The spectral features joined with activation features: the basis's row of the correlation
    matrix of the log-activations (bases of one source tend to be active at the same time),
    scaled to unit L2 norm and weighted by ``act_weight``.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from nmfsep.errors import ParameterError

FEATURES: tuple[str, ...] = ("logspec", "mfcc", "logspec+act", "mfcc+act")
"""Valid values of ``features`` / ``kind``."""

DEFAULT_FEATURES = "logspec"
"""Default feature kind, chosen by measurement of ``nmfsep cluster`` on the development cases
(bench/README.md): the normalised log-spectrum was best or tied on the speech-in-noise cases;
MFCCs tie on two of three; the activation block did not help consistently."""

_N_MELS = 64
_N_MFCC = 20
_EPS = 1e-10


def _nonnegative(X: Any, name: str) -> np.ndarray:
    """``X`` as float64 after checking it holds finite, non-negative real numbers."""
    if not np.issubdtype(X.dtype, np.number) or np.iscomplexobj(X):
        raise ParameterError(f"{name} must hold real numbers, got dtype {X.dtype}")
    X = X.astype(np.float64)
    if not np.all(np.isfinite(X)):
        raise ParameterError(f"{name} holds NaN or infinite values")
    if np.any(X < 0):
        raise ParameterError(f"{name} must be non-negative")
    return X


def _check_W(W: Any) -> np.ndarray:
    W = np.asarray(W)
    if W.ndim != 2 or W.shape[0] < 2 or W.shape[1] < 1:
        raise ParameterError(f"W must be a 2-D array (n_freq >= 2, K >= 1), got shape {W.shape}")
    return _nonnegative(W, "W")


def _check_H(H: Any, K: int) -> np.ndarray:
    H = np.asarray(H)
    if H.ndim != 2 or H.shape[0] != K or H.shape[1] < 1:
        raise ParameterError(f"H must have shape (K={K}, n_frames >= 1), got {H.shape}")
    return _nonnegative(H, "H")


def _check_sr_nfft(sr: float, n_fft: int, n_freq: int) -> None:
    if not np.isfinite(sr) or sr <= 0:
        raise ParameterError(f"sr must be a positive number, got {sr!r}")
    if int(n_fft) != n_fft or n_fft < 2:
        raise ParameterError(f"n_fft must be an integer >= 2, got {n_fft!r}")
    if int(n_fft) // 2 + 1 != n_freq:
        raise ParameterError(
            f"W has {n_freq} frequency rows but n_fft={n_fft} gives {int(n_fft) // 2 + 1}"
        )


def _mel_filterbank(sr: float, n_fft: int) -> np.ndarray:
    """Slaney-normalised mel filterbank (n_mels, n_freq) with empty filters removed."""
    import librosa

    n_freq = n_fft // 2 + 1
    n_mels = int(min(_N_MELS, max(8, n_freq // 4)))
    with warnings.catch_warnings():
        # librosa warns about empty filters when n_mels is large for n_fft; we drop them below.
        warnings.simplefilter("ignore", UserWarning)
        fb = librosa.filters.mel(sr=float(sr), n_fft=int(n_fft), n_mels=n_mels, dtype=np.float64)
    fb = fb[fb.sum(axis=1) > 0]
    return np.asarray(fb, dtype=np.float64)


def _unit_rows(X: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(X, axis=1, keepdims=True)
    return np.divide(X, norm, out=np.zeros_like(X), where=norm > 0)


def _log_mel(W: np.ndarray, sr: float, n_fft: int, *, power: float) -> np.ndarray:
    """(K, n_mels) log mel spectrum of each column of W scaled to unit maximum."""
    peak = W.max(axis=0, keepdims=True)
    Wn = np.divide(W, peak, out=np.zeros_like(W), where=peak > 0)
    mel = _mel_filterbank(sr, n_fft) @ (Wn**power)
    # floor 80 dB (power) below the peak of each basis, so near-empty bands do not dominate
    floor = 1e-8 * np.maximum(mel.max(axis=0, keepdims=True), _EPS)
    return np.log(np.maximum(mel, floor)).T


def _activation_features(H: np.ndarray) -> np.ndarray:
    """(K, K) rows of the correlation matrix of the log-activations."""
    K = H.shape[0]
    if H.shape[1] < 2:
        return np.zeros((K, K))
    peak = max(float(H.max()), _EPS)
    logH = np.log(H + 1e-4 * peak)  # 80 dB range below the loudest activation
    logH = logH - logH.mean(axis=1, keepdims=True)
    logH = _unit_rows(logH)
    corr = logH @ logH.T
    return _unit_rows(corr)


def basis_features(
    W: np.ndarray,
    *,
    H: np.ndarray | None = None,
    kind: str = DEFAULT_FEATURES,
    sr: float,
    n_fft: int,
    act_weight: float = 1.0,
) -> np.ndarray:
    """Feature vector of each NMF basis, for clustering the bases into sources.

    Parameters
    ----------
    W : np.ndarray, shape (n_freq, K), non-negative
        Bases (magnitude spectra) as columns; ``n_freq = n_fft // 2 + 1``.
    H : np.ndarray, shape (K, n_frames), non-negative, optional
        Activations; required by the ``"...+act"`` kinds, otherwise only validated.
    kind : str
        One of :data:`FEATURES` (see the module docstring).
    sr : float
        Sample rate in Hz of the signal the bases describe.
    n_fft : int
        FFT size of the STFT the bases live in.
    act_weight : float
        Weight of the activation block relative to the spectral block (each block has unit
        L2 norm per basis before weighting). Only used by the ``"...+act"`` kinds.

    Returns
    -------
    np.ndarray, shape (K, n_features), float64
        Finite features, one row per basis.

    Raises
    ------
    ParameterError
        Unknown ``kind``, bad shapes or values, ``H`` missing for an activation kind.
    """
    if kind not in FEATURES:
        raise ParameterError(f"features must be one of {', '.join(FEATURES)}, got {kind!r}")
    W = _check_W(W)
    _check_sr_nfft(sr, n_fft, W.shape[0])
    if not np.isfinite(act_weight) or act_weight < 0:
        raise ParameterError(f"act_weight must be a non-negative number, got {act_weight!r}")
    Hc = None if H is None else _check_H(H, W.shape[1])  # checked even when unused
    base, _, act = kind.partition("+")
    if base == "logspec":
        logmel = _log_mel(W, sr, int(n_fft), power=1.0)
        spec = _unit_rows(logmel - logmel.mean(axis=1, keepdims=True))
    else:
        import scipy.fft

        logmel = _log_mel(W, sr, int(n_fft), power=2.0)
        ceps = scipy.fft.dct(logmel, type=2, norm="ortho", axis=1)
        spec = _unit_rows(ceps[:, 1 : _N_MFCC + 1])
    if not act:
        return spec
    if Hc is None:
        raise ParameterError(f"features {kind!r} need the activations H")
    return np.concatenate([spec, act_weight * _activation_features(Hc)], axis=1)


def _seed(random_state: int | np.random.Generator | None) -> int | None:
    if random_state is None:
        return None
    if isinstance(random_state, np.random.Generator):
        return int(random_state.integers(0, 2**31 - 1))
    if isinstance(random_state, (int, np.integer)) and not isinstance(random_state, bool):
        if random_state < 0:
            raise ParameterError(f"random_state must be >= 0, got {random_state!r}")
        return int(random_state) % (2**32)
    raise ParameterError(
        f"random_state must be an int, a numpy Generator or None, got {random_state!r}"
    )


def _split_duplicates(X: np.ndarray, n_clusters: int) -> np.ndarray:
    """Labels when X has fewer distinct rows than n_clusters: one cluster per distinct row,
    then further clusters carved (one basis each) out of the largest groups."""
    _, inverse = np.unique(X, axis=0, return_inverse=True)
    labels = np.asarray(inverse).reshape(-1).astype(np.int64)
    next_label = int(labels.max()) + 1
    while next_label < n_clusters:
        counts = np.bincount(labels, minlength=next_label)
        biggest = int(np.argmax(counts))  # first of the largest groups: deterministic
        member = int(np.flatnonzero(labels == biggest)[-1])
        labels[member] = next_label
        next_label += 1
    return labels


def cluster_bases(
    W: np.ndarray,
    *,
    n_clusters: int,
    H: np.ndarray | None = None,
    features: str = DEFAULT_FEATURES,
    sr: float,
    n_fft: int,
    random_state: int | np.random.Generator | None = None,
    n_init: int = 10,
    act_weight: float = 1.0,
) -> np.ndarray:
    """Assign each NMF basis to one of ``n_clusters`` sources with seeded k-means.

    Features come from :func:`basis_features`; clustering is scikit-learn's
    ``KMeans(n_clusters, n_init=n_init, random_state=...)``.

    **Label order rule**: clusters are numbered by increasing spectral centroid (in Hz) of the
    sum of their bases, each basis first scaled to unit sum -- cluster 0 is the lowest-pitched
    / darkest group. Ties are broken by the smallest basis index in the cluster. Every label in
    ``0..n_clusters-1`` is used by at least one basis.

    Parameters
    ----------
    W : np.ndarray, shape (n_freq, K), non-negative
        Bases as columns, ``n_freq = n_fft // 2 + 1``.
    n_clusters : int
        Number of sources, ``1 <= n_clusters <= K``.
    H : np.ndarray, shape (K, n_frames), optional
        Activations; required by the ``"...+act"`` feature kinds.
    features : str
        One of :data:`FEATURES`; default :data:`DEFAULT_FEATURES`.
    sr : float
        Sample rate in Hz.
    n_fft : int
        FFT size of the STFT.
    random_state : int, numpy.random.Generator or None
        Seed of the k-means initialisations; the same seed gives the same labels.
    n_init : int
        Number of k-means restarts (the best inertia is kept).
    act_weight : float
        Weight of the activation features (``"...+act"`` kinds).

    Returns
    -------
    np.ndarray, shape (K,), int64
        Source label of each basis.

    Raises
    ------
    ParameterError
        ``n_clusters`` not in ``[1, K]``, ``n_init < 1``, or any error of :func:`basis_features`.
    """
    W = _check_W(W)
    K = W.shape[1]
    if isinstance(n_clusters, bool) or int(n_clusters) != n_clusters or n_clusters < 1:
        raise ParameterError(f"n_clusters must be a positive integer, got {n_clusters!r}")
    n_clusters = int(n_clusters)
    if n_clusters > K:
        raise ParameterError(
            f"cannot make {n_clusters} clusters from {K} bases: use at least {n_clusters} "
            "components"
        )
    if isinstance(n_init, bool) or int(n_init) != n_init or n_init < 1:
        raise ParameterError(f"n_init must be a positive integer, got {n_init!r}")
    X = basis_features(W, H=H, kind=features, sr=sr, n_fft=n_fft, act_weight=act_weight)
    seed = _seed(random_state)
    if n_clusters == 1:
        return np.zeros(K, dtype=np.int64)
    X = np.round(X, 12)  # make "identical up to rounding" rows identical for the check below
    n_distinct = len(np.unique(X, axis=0))
    if n_distinct <= n_clusters:
        labels = _split_duplicates(X, n_clusters)
    else:
        from sklearn.cluster import KMeans
        from sklearn.exceptions import ConvergenceWarning

        km = KMeans(n_clusters=n_clusters, n_init=int(n_init), random_state=seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            labels = km.fit_predict(X).astype(np.int64)
        # near-duplicates can still leave a cluster empty: fill it from the largest cluster
        for missing in sorted(set(range(n_clusters)) - set(labels.tolist())):
            counts = np.bincount(labels, minlength=n_clusters)
            biggest = int(np.argmax(counts))
            labels[int(np.flatnonzero(labels == biggest)[-1])] = missing
    return _order_by_centroid(W, labels, n_clusters, sr)


def _order_by_centroid(W: np.ndarray, labels: np.ndarray, n_clusters: int, sr: float) -> np.ndarray:
    col_sum = W.sum(axis=0, keepdims=True)
    Wn = np.divide(W, col_sum, out=np.zeros_like(W), where=col_sum > 0)
    freqs = np.linspace(0.0, sr / 2.0, W.shape[0])
    keys = []
    for c in range(n_clusters):
        members = np.flatnonzero(labels == c)
        spec = Wn[:, members].sum(axis=1)
        total = spec.sum()
        centroid = float(freqs @ spec / total) if total > 0 else 0.0
        keys.append((centroid, int(members.min()) if members.size else W.shape[1], c))
    order = [c for _, _, c in sorted(keys)]
    remap = np.empty(n_clusters, dtype=np.int64)
    remap[order] = np.arange(n_clusters)
    return remap[labels]
