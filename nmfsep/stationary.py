"""The stationary-noise expert: a short-window decision-directed Wiener filter, blended into the
first source where the noise is stationary.

The built-in model's STFT (128 ms frames at 16 kHz) suits its bases, not speech onsets, and a
model of speech learned on other voices leaves some of an unseen voice in its noise estimate.
Where the noise is stationary (rain, a river, an engine, a fan) the textbook enhancer does
better: a minimum-statistics noise PSD (Martin 2001) on short (32 ms) frames, the
decision-directed a-priori SNR and its Wiener gain (Ephraim & Malah 1984). Where the noise
moves (music, voices, birds) it does much worse. So the enhancer is an expert that speaks only
when the block says its noise is stationary:

* the **gate**: ``s = 10 log10(sum(lambda) / sum(|R|^2))`` on the short STFT, ``lambda`` the
  minimum-statistics PSD of the mixture and ``R`` what the separation removed (the mixture
  minus its first source). A stationary noise is all floor: the tracker finds as much noise as
  the separation removed (``s`` near 0 dB or above); a moving one has a floor far below its
  mean (``s`` of -3 to -25 dB). The gate is open (``g = 1``) at ``s >= full_db`` and closes
  linearly to ``g = 0`` at ``full_db - width_db``;
* the **noise PSD** of the expert's gain: the tracker's floor where the gate is wide open,
  what the separation removed (smoothed over time) where it is half open, geometrically
  blended by the gate's openness ``g``: ``lambda^g R^(1 - g)`` (the short frames then refine
  the separation's own noise estimate);
* the **blend**, in the time domain (the two estimates live on different STFTs):
  ``s_1 <- (1 - a) s_1 + a s_dd``, ``a = weight * g``; the rest takes the difference, so the
  sources still sum to the mixture.

Measured on the held-out folds of ``bench/generalise.py`` (bench/README.md, "Stationary
expert"). Pure maths on arrays: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from nmfsep import defaults
from nmfsep.spectral import STFTConfig, istft_rows, stft_rows, window_sum, windows
from nmfsep.tracking import TrackerSettings, _alpha, dd_gain, min_statistics, smooth

__all__ = ["ExpertSettings", "dd_wiener", "expert_weight", "stationarity_db", "stationary_expert"]

_TINY = np.float32(1e-12)


@dataclass(frozen=True)
class ExpertSettings:
    """The expert's frame length (seconds) and gate (dB), and the tracker's time constants
    (the tracked gain's, :class:`~nmfsep.tracking.TrackerSettings`). Defaults:
    :mod:`nmfsep.defaults` (the textbook filter's; the gate measured on the folds)."""

    frame_seconds: float = defaults.STATIONARY_FRAME_SECONDS
    full_db: float = defaults.STATIONARY_FULL_DB
    width_db: float = defaults.STATIONARY_WIDTH_DB
    tracker: TrackerSettings = field(default_factory=TrackerSettings)


@lru_cache(maxsize=16)
def _frames(sr: int, frame_seconds: float) -> tuple[STFTConfig, np.ndarray, np.ndarray]:
    """The expert's STFT at ``sr``: a Hann window of about ``frame_seconds`` (a size the FFT
    is fast at: 512 samples at 16 kHz), 75 % overlap."""
    from scipy.fft import next_fast_len

    n_fft = int(next_fast_len(max(16, round(frame_seconds * sr)), real=True))
    n_fft += n_fft % 2
    config = STFTConfig(n_fft=n_fft, hop_length=n_fft // 4)
    window, window_sq = windows(config)
    return config, window, window_sq


def _periodogram(x: np.ndarray, config: STFTConfig, window: np.ndarray):
    """The centred STFT of every sample of ``x`` (channels, n) (zeros around it), frames as
    rows, and the channels' mean periodogram (n_freq, n_frames)."""
    pad = config.n_fft // 2
    hop = config.hop_length
    n = x.shape[-1]
    n_frames = 1 + n // hop
    total = (n_frames - 1) * hop + config.n_fft
    padded = np.zeros((x.shape[0], total), np.float32)
    padded[:, pad : pad + n] = x
    X = stft_rows(padded, config, window)
    P = (X.real**2 + X.imag**2).mean(axis=0).T
    return X, np.ascontiguousarray(P, dtype=np.float32)


def _noise_psd(P: np.ndarray, hop_seconds: float, s: ExpertSettings) -> np.ndarray:
    """Minimum-statistics noise PSD of ``P``; frames of digital silence (the zeros around a
    file, gaps) take the mean periodogram of the others, so that they do not pull the floor
    of their neighbours to zero."""
    silent = P.sum(axis=0) <= 0.0
    if silent.any() and not silent.all():
        P = P.copy()
        P[:, silent] = P[:, ~silent].mean(axis=1, keepdims=True)
    return min_statistics(
        P,
        alpha=_alpha(s.tracker.smooth_seconds, hop_seconds),
        frames=round(s.tracker.window_seconds / hop_seconds),
    )


def dd_wiener(x: np.ndarray, *, sr: int, settings: ExpertSettings | None = None) -> np.ndarray:
    """The decision-directed Wiener filter's estimate of the target in ``x``.

    Parameters
    ----------
    x : np.ndarray, shape (n_channels, n_samples)
        The mixture (float32). One gain for every channel, from their mean periodogram.
    sr : int
        Sample rate (the frame length is in seconds).

    Returns
    -------
    np.ndarray, shape (n_channels, n_samples), float32
    """
    s = settings or ExpertSettings()
    x = np.asarray(x, dtype=np.float32)
    config, window, window_sq = _frames(int(sr), s.frame_seconds)
    X, P = _periodogram(x, config, window)
    if not P.any():
        return np.zeros_like(x)
    hop_seconds = config.hop_length / sr
    noise = _noise_psd(P, hop_seconds, s)
    G = dd_gain(
        P, noise, alpha=_alpha(s.tracker.dd_seconds, hop_seconds), xi_min_db=s.tracker.xi_min_db
    )
    return _synthesise(X, G, config, window, window_sq, x.shape[1])


def stationarity_db(
    x: np.ndarray, removed: np.ndarray, *, sr: int, settings: ExpertSettings | None = None
) -> float | None:
    """The gate's statistic: the mixture's minimum-statistics noise power over the power a
    separation removed from it, in dB, on the expert's STFT (None: nothing was removed, or
    the mixture is silent).

    Parameters
    ----------
    x, removed : np.ndarray, shape (n_channels, n_samples)
        The mixture and what the separation took out of it (mixture minus first source).
    """
    return stationary_expert(x, removed, sr=sr, weight=0.0, settings=settings)[2]


def stationary_expert(
    x: np.ndarray,
    removed: np.ndarray,
    *,
    sr: int,
    weight: float,
    core: tuple[int, int] | None = None,
    settings: ExpertSettings | None = None,
) -> tuple[np.ndarray | None, float, float | None]:
    """The expert for one block: its estimate of the target, its weight and the gate's
    statistic.

    The gate's openness ``g = expert_weight(stat, 1)`` sets both the weight (``weight * g``)
    and the noise PSD the decision-directed gain works against: the tracker's floor where the
    noise is stationary, what the separation removed (smoothed over time like the
    periodogram) where it is less so, geometrically blended, ``lambda^g R^(1 - g)`` (measured
    on the folds: +0.1 dB over the floor alone at the same gate; bench/README.md).

    Parameters
    ----------
    x, removed : np.ndarray, shape (n_channels, n_samples)
        The block's mixture and what the separation took out of it.
    weight : float
        The largest weight (``stationary_blend``).
    core : (int, int), optional
        The samples the gate looks at (the block's own, not its overlaps); default all.

    Returns
    -------
    (estimate, weight, statistic): the estimate (n_channels, n_samples) is None when the
    weight is 0.
    """
    s = settings or ExpertSettings()
    config, window, _ = _frames(int(sr), s.frame_seconds)
    x = np.asarray(x, dtype=np.float32)
    X, P = _periodogram(x, config, window)
    _, R = _periodogram(np.asarray(removed, dtype=np.float32), config, window)
    hop = config.hop_length
    hop_seconds = hop / sr
    floor = _noise_psd(P, hop_seconds, s) if P.any() else None
    # frames centred in the core (frame k is centred on sample k * hop); default every frame
    frames = slice(None)
    if core is not None:
        first = -(-core[0] // hop)
        frames = slice(first, max(first + 1, -(-core[1] // hop)))
    rest = float(R[:, frames].sum(dtype=np.float64))
    if floor is None or rest <= 0.0:
        return None, 0.0, None
    stat = 10.0 * float(np.log10(max(float(floor[:, frames].sum(dtype=np.float64)), 1e-30) / rest))
    g = expert_weight(stat, 1.0, s)
    if weight * g <= 0.0:
        return None, 0.0, stat
    return _estimate(X, P, R, floor, g, sr, s, x.shape[1]), float(weight * g), stat


def _estimate(
    X: np.ndarray,
    P: np.ndarray,
    R: np.ndarray,
    floor: np.ndarray,
    g: float,
    sr: int,
    s: ExpertSettings,
    n: int,
) -> np.ndarray:
    """The expert's estimate with the gate open by ``g`` (0..1): the decision-directed gain
    against ``floor^g R_smoothed^(1 - g)``, applied to ``X``."""
    config, window, window_sq = _frames(int(sr), s.frame_seconds)
    hop_seconds = config.hop_length / sr
    noise = floor
    if g < 1.0:
        moving = np.log(np.maximum(smooth(R, _alpha(s.tracker.smooth_seconds, hop_seconds)), _TINY))
        noise = np.log(floor)
        noise *= np.float32(g)
        noise += np.float32(1.0 - g) * moving
        noise = np.exp(noise, out=noise)
    G = dd_gain(
        P, noise, alpha=_alpha(s.tracker.dd_seconds, hop_seconds), xi_min_db=s.tracker.xi_min_db
    )
    return _synthesise(X, G, config, window, window_sq, n)


def _synthesise(
    X: np.ndarray,
    G: np.ndarray,
    config: STFTConfig,
    window: np.ndarray,
    window_sq: np.ndarray,
    n: int,
) -> np.ndarray:
    """The gain applied to the centred STFT ``X`` (rows), back to ``n`` samples."""
    X = X * np.ascontiguousarray(G.T)
    y = istft_rows(X, config, window)
    wss = window_sum(window_sq, X.shape[1], config.hop_length)
    pad = config.n_fft // 2
    return np.asarray(y[:, pad : pad + n] / np.maximum(wss[pad : pad + n], _TINY), np.float32)


def expert_weight(
    stat_db: float | None, weight: float, settings: ExpertSettings | None = None
) -> float:
    """The expert's weight for a block whose statistic is ``stat_db``: ``weight`` at
    ``full_db`` and above, 0 at ``full_db - width_db`` and below, linear between."""
    s = settings or ExpertSettings()
    if stat_db is None or weight <= 0.0:
        return 0.0
    ramp = (stat_db - (s.full_db - s.width_db)) / max(s.width_db, 1e-9)
    return float(weight * np.clip(ramp, 0.0, 1.0))
