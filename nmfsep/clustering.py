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

from nmfsep import defaults
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


# ------------------------------------------------------------------------------ grouping by source

GROUPINGS: tuple[str, ...] = (
    "act", "hpss", "modulation", "mfcc0", "logspec+mod", "logspec+hpss", "mfcc0-or-mod",
    "guided", "auto",
)  # fmt: skip
"""Groupings that look at more than a basis's spectral shape (issue 12):

``"act"``
    Spectral clustering of an activation affinity: bases whose log-activations co-vary over
    time (correlation, negative values clipped to 0) belong together, whatever their register.
``"hpss"``
    Harmonic/percussive share: the part ``W_k H_k`` of each basis is weighed by librosa's HPSS
    masks (margin 3) of the mixture; bases are split by their percussive share (two sources),
    or k-means on the log-spectrum joined with that share (more).
``"modulation"``
    Speech against noise: a basis is speech-like when its spectrum is harmonic (a pitch
    autocorrelation peak) and its activation is modulated (dynamic range and 2-8 Hz syllabic
    envelope power); noise bases are stationary. Two sources: 1-D two-means on the summed
    z-scores; more: k-means on the log-spectrum joined with those scores.
``"mfcc0"``
    MFCCs with c0 (the basis's level relative to its peak, i.e. spectral density) kept, k-means.
``"mfcc0-or-mod"``
    Both the ``"mfcc0"`` and the ``"modulation"`` partitions, then the one whose sources are
    the more independent in time: the lower mean correlation between the sources' activation
    envelopes (:func:`envelope_correlation`); ties keep ``"mfcc0"``.
``"guided"``
    Speech against the rest, by a speech/noise model's view of the mixture: each basis's share
    of its part ``W_k H_k`` that falls on the model's speech mask of the same frames
    (``speech``, from :class:`nmfsep.unsupervised.SpeechGuide`: the built-in model's Wiener
    share); two sources: 1-D two-means of the shares; more: the low-share bases are split
    further by ``"mfcc0"``. The model is only a guide: the output is still made of the bases
    learned on the mixture (the supervised path, ``separate``, uses the model's own bases).
``"auto"``
    ``"guided"`` when the guide hears speech, else ``"mfcc0-or-mod"``: the guide's speech
    power share of the frames (:func:`speech_power_share`) against
    :data:`nmfsep.defaults.CLUSTER_AUTO_SPEECH_SHARE` (:func:`auto_grouping`). Needs
    ``speech`` as ``"guided"`` does.
"""

ALL_KINDS: tuple[str, ...] = FEATURES + GROUPINGS


def _zscore(x: np.ndarray) -> np.ndarray:
    sd = float(x.std())
    return (x - x.mean()) / sd if sd > 0 else np.zeros_like(x)


def _split_1d(score: np.ndarray) -> np.ndarray:
    """Two groups of a 1-D score with the least within-group variance (label 1 = high scores);
    both groups non-empty."""
    order = np.argsort(score, kind="stable")
    s = score[order]
    best, cut = np.inf, 1
    for c in range(1, s.size):
        cost = s[:c].var() * c + s[c:].var() * (s.size - c)
        if cost < best - 1e-12:
            best, cut = cost, c
    labels = np.zeros(score.size, np.int64)
    labels[order[cut:]] = 1
    return labels


def activation_affinity(H: np.ndarray) -> np.ndarray:
    """(K, K) affinity of the bases' log-activations: their correlation, clipped to [0, 1]."""
    K = H.shape[0]
    if H.shape[1] < 2:
        return np.ones((K, K))
    peak = max(float(H.max()), _EPS)
    logH = np.log(H + 1e-4 * peak)
    logH = _unit_rows(logH - logH.mean(axis=1, keepdims=True))
    return np.clip(logH @ logH.T, 0.0, 1.0)


def percussive_share(W: np.ndarray, H: np.ndarray, P: np.ndarray) -> np.ndarray:
    """Share of each basis's part ``W_k H_k`` that falls on the percussive mask ``P``
    (n_freq, n_frames, values in [0, 1]; the harmonic mask is ``1 - P``)."""
    total = W.sum(axis=0) * H.sum(axis=1)
    perc = np.einsum("fk,ft,kt->k", W, P, H, optimize=True)
    return np.divide(perc, total, out=np.full(W.shape[1], 0.5), where=total > 0)


def hpss_mask(V: np.ndarray, *, margin: float = 3.0) -> np.ndarray:
    """Soft percussive mask of magnitude frames ``V`` (n_freq, n_frames): librosa HPSS
    (median filters of 31 frames / bins, margin ``margin``), ``P / (P + H)``."""
    import librosa

    Hm, Pm = librosa.decompose.hpss(np.asarray(V, np.float64), margin=margin, mask=True)
    den = Hm + Pm
    return np.divide(Pm, den, out=np.full_like(Pm, 0.5), where=den > 0)


def modulation_scores(
    W: np.ndarray, H: np.ndarray, *, sr: float, n_fft: int, frame_rate: float
) -> np.ndarray:
    """(K, 3) speech-likeness cues of each basis: pitch harmonicity of its spectrum, dynamic
    range of its log-activation, and the share of its envelope's modulation power in 2-8 Hz."""
    K = W.shape[1]
    # harmonicity: normalised autocorrelation of the spectrum's fine structure over frequency,
    # best lag in the pitch range 70-400 Hz (the harmonics' spacing)
    df = sr / n_fft
    lo, hi = max(1, int(np.floor(70.0 / df))), int(np.ceil(400.0 / df))
    f_max = min(W.shape[0], int(4000.0 / df) + 1)  # harmonics are resolved below ~4 kHz
    X = np.log(W[:f_max] + 1e-6 * max(float(W.max()), _EPS))
    from scipy.ndimage import uniform_filter1d

    fine = X - uniform_filter1d(X, size=max(3, 2 * hi + 1), axis=0, mode="nearest")
    harm = np.zeros(K)
    if hi < f_max // 2:
        fine = fine - fine.mean(axis=0)
        e = (fine**2).sum(axis=0)
        for lag in range(lo, hi + 1):
            r = (fine[:-lag] * fine[lag:]).sum(axis=0) / np.maximum(e, _EPS)
            harm = np.maximum(harm, r)
    # dynamic range of the activation (dB between its 95th and 20th percentiles)
    peak = max(float(H.max()), _EPS)
    logH = 10.0 * np.log10(H + 1e-5 * peak)
    depth = np.percentile(logH, 95, axis=1) - np.percentile(logH, 20, axis=1)
    # syllabic modulation: share of the envelope's power at 2-8 Hz (of 0.5 Hz up)
    mod = np.zeros(K)
    if H.shape[1] >= 16:
        env = H / np.maximum(H.mean(axis=1, keepdims=True), _EPS)
        spec = np.abs(np.fft.rfft(env - 1.0, axis=1)) ** 2
        f = np.fft.rfftfreq(H.shape[1], d=1.0 / frame_rate)
        band = (f >= 2.0) & (f <= 8.0)
        allf = f >= 0.5
        tot = spec[:, allf].sum(axis=1)
        mod = np.divide(spec[:, band].sum(axis=1), tot, out=np.zeros(K), where=tot > 0)
    return np.stack([harm, depth, mod], axis=1)


def group_bases(
    W: np.ndarray,
    *,
    n_clusters: int,
    method: str,
    H: np.ndarray | None = None,
    V: np.ndarray | None = None,
    percussive: np.ndarray | None = None,
    speech: np.ndarray | None = None,
    sr: float,
    n_fft: int,
    frame_rate: float = 62.5,
    random_state: int | np.random.Generator | None = None,
) -> np.ndarray:
    """Source label of each basis by one of :data:`ALL_KINDS` (ordered by spectral centroid).

    ``H`` (activations) is needed by every method but ``mfcc0`` and the plain k-means kinds;
    ``hpss`` needs the percussive mask of the frames (``percussive``) or the frames ``V``;
    ``guided`` the speech share of the frames (``speech``, shape of ``H``'s frames:
    (n_freq, n_frames), values in [0, 1]).
    """
    if method in FEATURES:
        return cluster_bases(
            W, n_clusters=n_clusters, H=H, features=method, sr=sr, n_fft=n_fft,
            random_state=random_state,
        )  # fmt: skip
    if method not in GROUPINGS:
        raise ParameterError(f"features must be one of {', '.join(ALL_KINDS)}, got {method!r}")
    W = _check_W(W)
    K = W.shape[1]
    if isinstance(n_clusters, bool) or int(n_clusters) != n_clusters or not 1 <= n_clusters <= K:
        raise ParameterError(f"n_clusters must be an integer in [1, {K}], got {n_clusters!r}")
    _check_sr_nfft(sr, n_fft, W.shape[0])
    seed = _seed(random_state)
    if n_clusters == 1:
        return np.zeros(K, np.int64)
    if method == "mfcc0":
        return _mfcc0_labels(W, n_clusters, seed, sr, int(n_fft))
    if H is None:
        raise ParameterError(f"features {method!r} need the activations H")
    Hc = _check_H(H, K)
    if method == "mfcc0-or-mod":
        by_timbre = _mfcc0_labels(W, n_clusters, seed, sr, int(n_fft))
        by_modulation = group_bases(
            W, n_clusters=n_clusters, method="modulation", H=Hc, sr=sr, n_fft=n_fft,
            frame_rate=frame_rate, random_state=seed,
        )  # fmt: skip
        if envelope_correlation(W, Hc, by_modulation) < envelope_correlation(W, Hc, by_timbre):
            return by_modulation
        return by_timbre
    if method == "auto":
        if speech is None or V is None:
            raise ParameterError("features 'auto' need the frames V and their speech share")
        return group_bases(
            W, n_clusters=n_clusters, method=auto_grouping(speech_power_share(V, speech)), H=Hc,
            speech=speech, sr=sr, n_fft=n_fft, frame_rate=frame_rate, random_state=seed,
        )  # fmt: skip
    if method == "guided":
        return _guided_labels(W, Hc, speech, n_clusters, seed, sr, int(n_fft))
    if method == "act":
        A = activation_affinity(Hc)
        return _order_by_centroid(W, _spectral(A, n_clusters, seed), n_clusters, sr)
    if method.endswith("hpss"):
        if percussive is None:
            if V is None:
                raise ParameterError("features 'hpss' need the mixture frames V")
            percussive = hpss_mask(_nonnegative(np.asarray(V), "V"))
        score = _zscore(percussive_share(W, Hc, np.asarray(percussive, np.float64)))[:, None]
    else:
        score = modulation_scores(W, Hc, sr=sr, n_fft=int(n_fft), frame_rate=frame_rate)
        score = np.stack([_zscore(c) for c in score.T], axis=1)
    if n_clusters == 2 and not method.startswith("logspec+"):
        labels = _split_1d(score.sum(axis=1))
    else:
        spec = basis_features(W, kind="logspec", sr=sr, n_fft=n_fft)
        labels = _kmeans_raw(
            np.concatenate([spec, score / np.sqrt(score.shape[1])], 1), n_clusters, seed
        )
    return _order_by_centroid(W, labels, n_clusters, sr)


def speech_power_share(V: np.ndarray, speech: np.ndarray, *, block: int = 1024) -> float:
    """The guide's speech share of the frames' power: ``sum(P V^2) / sum(V^2)`` for the
    magnitudes ``V`` and the speech mask ``P`` (both (n_freq, n_frames), ``P`` clipped to
    [0, 1]); 0 for silence. Summed in float64 over ``block`` frames at a time, so a sample of
    20 000 frames needs no float64 copy of its own."""
    V, P = np.asarray(V), np.asarray(speech)
    total = part = 0.0
    for a in range(0, V.shape[1], block):
        v2 = np.square(V[:, a : a + block], dtype=np.float64)
        total += float(v2.sum())
        part += float(np.sum(np.clip(P[:, a : a + block], 0.0, 1.0) * v2))
    return part / total if total > 0 else 0.0


def auto_grouping(share: float) -> str:
    """The grouping ``features="auto"`` uses at this :func:`speech_power_share`: speech-guided
    when the guide hears enough speech, else timbre-or-modulation (the speech model is no
    guide to music). The threshold was chosen on a tuning set of its own (bench/README.md,
    "`--features auto`")."""
    return "guided" if share >= defaults.CLUSTER_AUTO_SPEECH_SHARE else "mfcc0-or-mod"


def speech_shares(W: np.ndarray, H: np.ndarray, speech: np.ndarray) -> np.ndarray:
    """Share of each basis's part ``W_k H_k`` that falls on the speech mask ``speech``
    (n_freq, n_frames, values in [0, 1]); 0.5 for a basis that is never active."""
    return percussive_share(W, H, speech)


def speech_bases(W: np.ndarray, H: np.ndarray, speech: np.ndarray) -> np.ndarray:
    """Which bases are speech: the high group of their :func:`speech_shares` by 1-D two-means
    (the split with the least within-group variance; both groups non-empty, so ``K >= 2``).
    Boolean, shape (K,)."""
    return _split_1d(speech_shares(W, H, speech)).astype(bool)


def _guided_labels(
    W: np.ndarray,
    H: np.ndarray,
    speech: np.ndarray | None,
    n_clusters: int,
    seed: int | None,
    sr: float,
    n_fft: int,
) -> np.ndarray:
    if speech is None:
        raise ParameterError("features 'guided' need the speech share of the frames")
    P = _nonnegative(np.asarray(speech), "speech")
    if P.shape != (W.shape[0], H.shape[1]):
        raise ParameterError(
            f"speech must have shape {(W.shape[0], H.shape[1])} (n_freq, n_frames), got {P.shape}"
        )
    speechy = speech_bases(W, H, np.minimum(P, 1.0))
    rest = np.flatnonzero(~speechy)
    labels = np.full(W.shape[1], n_clusters - 1, np.int64)  # the speech bases
    if n_clusters == 2:
        labels[rest] = 0
    elif rest.size >= n_clusters - 1:  # the others, split by timbre
        labels[rest] = _mfcc0_labels(W[:, rest], n_clusters - 1, seed, sr, n_fft)
    else:  # fewer other bases than the sources asked for
        return _mfcc0_labels(W, n_clusters, seed, sr, n_fft)
    return _order_by_centroid(W, labels, n_clusters, sr)


def _mfcc0_labels(
    W: np.ndarray, n_clusters: int, seed: int | None, sr: float, n_fft: int
) -> np.ndarray:
    import scipy.fft

    logmel = _log_mel(W, sr, n_fft, power=2.0)
    ceps = scipy.fft.dct(logmel, type=2, norm="ortho", axis=1)[:, : _N_MFCC + 1]
    return _kmeans(_unit_rows(ceps), W, n_clusters, seed, sr)


def envelope_correlation(W: np.ndarray, H: np.ndarray, labels: np.ndarray) -> float:
    """Mean Pearson correlation, over the pairs of sources, of the sources' activation
    envelopes ``e_s(t) = sum_{k in s} ||W_k||_1 H_k(t)`` (the summed magnitude of each source's part
    of ``W H`` in frame t). Independent sources give about 0; a partition that splits one
    source in two gives co-varying halves (a positive value). A constant envelope counts as
    uncorrelated; one frame gives 0."""
    labels = np.asarray(labels)
    groups = [np.flatnonzero(labels == s) for s in np.unique(labels)]
    if len(groups) < 2 or H.shape[1] < 2:
        return 0.0
    gain = W.sum(axis=0)
    env = np.stack([gain[g] @ H[g] for g in groups])
    env = env - env.mean(axis=1, keepdims=True)
    env = _unit_rows(env)  # a constant envelope becomes all zeros: correlation 0
    corr = env @ env.T
    upper = np.triu_indices(len(groups), 1)
    return float(corr[upper].mean())


def _kmeans_raw(X: np.ndarray, n_clusters: int, seed: int | None) -> np.ndarray:
    from sklearn.cluster import KMeans
    from sklearn.exceptions import ConvergenceWarning

    X = np.round(X, 12)
    if len(np.unique(X, axis=0)) <= n_clusters:
        return _split_duplicates(X, n_clusters)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        labels = KMeans(n_clusters=n_clusters, n_init=10, random_state=seed).fit_predict(X)
    return _fill_empty(labels.astype(np.int64), n_clusters)


def _kmeans(
    X: np.ndarray, W: np.ndarray, n_clusters: int, seed: int | None, sr: float
) -> np.ndarray:
    return _order_by_centroid(W, _kmeans_raw(X, n_clusters, seed), n_clusters, sr)


def _fill_empty(labels: np.ndarray, n_clusters: int) -> np.ndarray:
    for missing in sorted(set(range(n_clusters)) - set(labels.tolist())):
        counts = np.bincount(labels, minlength=n_clusters)
        biggest = int(np.argmax(counts))
        labels[int(np.flatnonzero(labels == biggest)[-1])] = missing
    return labels


def _spectral(A: np.ndarray, n_clusters: int, seed: int | None) -> np.ndarray:
    """Spectral clustering of a precomputed affinity (normalised Laplacian embedding, k-means)."""
    d = A.sum(axis=1)
    dinv = 1.0 / np.sqrt(np.maximum(d, _EPS))
    L = dinv[:, None] * A * dinv[None, :]
    _, vecs = np.linalg.eigh(L)
    emb = _unit_rows(vecs[:, -n_clusters:][:, ::-1])
    return _kmeans_raw(emb, n_clusters, seed)


def choose_n_sources(
    W: np.ndarray,
    *,
    candidates: tuple[int, ...] = (2, 3, 4),
    sr: float,
    n_fft: int,
    random_state: int | np.random.Generator | None = None,
) -> int:
    """The number of sources for ``--sources auto``: of ``candidates``, the k-means clustering of
    the bases' log-spectra (:func:`basis_features`, ``"logspec"``) with the best mean silhouette
    (cosine distance); the smallest count wins ties. Counts above the number of bases are
    skipped."""
    from sklearn.metrics import silhouette_score

    W = _check_W(W)
    X = basis_features(W, kind="logspec", sr=sr, n_fft=n_fft)
    seed = _seed(random_state)
    best, best_n = -np.inf, min(candidates)
    for n in sorted(candidates):
        if n >= W.shape[1] or len(np.unique(np.round(X, 12), axis=0)) <= n:
            continue
        labels = _kmeans_raw(X, n, seed)
        if len(set(labels.tolist())) < 2:
            continue
        value = float(silhouette_score(X, labels, metric="cosine"))
        if value > best + 1e-9:
            best, best_n = value, n
    return int(best_n)
