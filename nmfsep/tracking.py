"""Noise tracking and the decision-directed gain: the built-in path's statistical post-filter.

A model of speech learned on other voices fits an unseen voice only roughly; where it misses,
the free noise bases learned on the mixture take the rest of the voice, and the Wiener mask
removes it along with the noise. This costs most at high SNR. A minimum-statistics noise
tracker (Martin 2001) does not see speech at all (speech pauses reveal the noise floor) but
misses non-stationary noise, where the NMF noise estimate is good. So the noise PSD of the
target is a geometric blend of the two, weighted by the SNR the NMF masks estimate — for the
block, and (blend "local", the default) for each bin, smoothed over time: NMF where the NMF
says noise dominates in a low-SNR block; the tracker where it says the target dominates (its
noise estimate there is a small remainder, least reliable) and everywhere in a high-SNR block.
The target's gain is the Wiener gain of the decision-directed a-priori SNR (Ephraim & Malah
1984), whose recursive smoothing also removes the musical-noise holes of a frame-by-frame
mask, times a quarter-power of the NMF mask (``G_dd^0.75 M^0.25``: the NMF's spectral detail,
measured best). Combining an NMF estimate with a decision-directed gain follows Mohammadiha,
Smaragdis & Leijon, "Supervised and unsupervised speech enhancement using nonnegative matrix
factorization", IEEE TASLP 21(10), 2013.

Measured on the held-out folds of ``bench/generalise.py`` (``bench/hybrid.py``, see
bench/README.md). Pure maths on arrays: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from nmfsep import defaults
from nmfsep._kernels import dd_recursion, recursive_smooth
from nmfsep.errors import ParameterError

_TINY = np.float32(1e-12)


@dataclass(frozen=True)
class TrackerSettings:
    """Time constants of the tracker and the gain, in seconds and dB (converted to frames for a
    hop). Defaults: :mod:`nmfsep.defaults` (measured on the folds)."""

    smooth_seconds: float = defaults.TRACK_SMOOTH_SECONDS
    window_seconds: float = defaults.TRACK_WINDOW_SECONDS
    dd_seconds: float = defaults.TRACK_DD_SECONDS
    xi_min_db: float = defaults.TRACK_XI_MIN_DB
    blend_mid_db: float = defaults.TRACK_BLEND_MID_DB
    blend_width_db: float = defaults.TRACK_BLEND_WIDTH_DB
    #: "block": one weight of the NMF noise estimate per block, from the block's SNR;
    #: "local": per bin, from the local SNR of the NMF masks, times the block's weight
    blend: str = defaults.TRACK_BLEND
    #: the gain is ``G_dd^(1 - mask_weight) * M^mask_weight`` (M: the NMF mask)
    mask_weight: float = defaults.TRACK_MASK_WEIGHT

    def __post_init__(self) -> None:
        if self.blend not in ("block", "local"):
            raise ParameterError(f"blend must be block or local, got {self.blend!r}")


def _alpha(seconds: float, hop_seconds: float) -> float:
    """The first-order smoothing constant whose time constant is ``seconds`` at this hop."""
    return float(np.exp(-hop_seconds / max(seconds, 1e-9)))


def smooth(P: np.ndarray, alpha: float) -> np.ndarray:
    """``S_t = alpha S_{t-1} + (1 - alpha) P_t`` along the last axis of ``P`` (n_freq,
    n_frames), starting from the mean of the first (up to 8) frames (a compiled loop; scipy's
    ``lfilter`` would do, but importing scipy.signal costs a second of start-up)."""
    P = np.asarray(P)
    if P.shape[-1] == 0:
        return P.copy()
    rows = np.ascontiguousarray(P.reshape(-1, P.shape[-1]))
    out = np.empty_like(rows)
    recursive_smooth(rows, float(alpha), out)
    return out.reshape(P.shape)


def running_min(S: np.ndarray, size: int) -> np.ndarray:
    """Minimum over a centred window of ``size`` frames along the last axis, the edges
    mirrored — ``scipy.ndimage.minimum_filter1d(S, size, axis=-1)`` (mode "reflect"), by van
    Herk's (1992) and Gil & Werman's (1993) running minimum in three passes (numpy only: the
    scipy.ndimage import costs start-up time)."""
    S = np.asarray(S)
    T = S.shape[-1]
    size = max(1, min(int(size), T))
    if size == 1 or T == 0:
        return S.copy()
    left = size // 2
    right = size - 1 - left
    # scipy's "reflect" = numpy's "symmetric"; pad so that blocks of `size` tile the array
    padded = np.pad(S, [(0, 0)] * (S.ndim - 1) + [(left, right)], mode="symmetric")
    n = padded.shape[-1]
    n_blocks = -(-n // size)
    fill = n_blocks * size - n
    if fill:
        padded = np.concatenate(
            [padded, np.full((*S.shape[:-1], fill), np.inf, dtype=padded.dtype)], axis=-1
        )
    blocks = padded.reshape((*S.shape[:-1], n_blocks, size))
    prefix = np.minimum.accumulate(blocks, axis=-1).reshape(padded.shape)
    suffix = np.minimum.accumulate(blocks[..., ::-1], axis=-1)[..., ::-1].reshape(padded.shape)
    # window i covers padded[i : i + size]: the suffix minimum from i to the end of its block
    # and the prefix minimum from the next block's start to i + size - 1
    return np.minimum(suffix[..., :T], prefix[..., size - 1 : size - 1 + T])


@lru_cache(maxsize=32)
def _min_bias(alpha: float, frames: int) -> float:
    """E[P] / E[min over ``frames`` of the smoothed periodogram] for Gaussian noise: the factor
    the minimum is multiplied by (Martin 2001 derives it analytically; a seeded simulation of
    exponential periodogram bins gives the same number for our smoothing, deterministically)."""
    rng = np.random.default_rng(0)
    n = 20000 + 10 * frames
    S = smooth(rng.exponential(1.0, size=(1, n)), alpha)[:, 5 * frames :]
    return float(1.0 / running_min(S, frames).mean())


def min_statistics(P: np.ndarray, *, alpha: float, frames: int) -> np.ndarray:
    """Minimum-statistics noise PSD of the periodogram ``P`` (n_freq, n_frames): ``P`` smoothed
    over time, its minimum over a centred window of ``frames``, bias-corrected.

    The window is centred (offline, inside one block): a block's result depends only on its
    own frames."""
    frames = max(3, int(frames))
    S = smooth(P, alpha)
    m = running_min(S, frames)
    return np.maximum(m * np.float32(_min_bias(round(alpha, 6), frames)), _TINY)


def dd_gain(P: np.ndarray, noise: np.ndarray, *, alpha: float, xi_min_db: float) -> np.ndarray:
    """Wiener gain ``xi / (1 + xi)`` with the decision-directed a-priori SNR (Ephraim & Malah
    1984): ``xi_t = alpha |A_{t-1}|^2 / noise_{t-1} + (1 - alpha) max(gamma_t - 1, 0)``,
    floored at ``xi_min`` (which also bounds the attenuation), ``gamma = P / noise``,
    ``A = G sqrt(P)``.

    Parameters
    ----------
    P, noise : np.ndarray, shape (n_freq, n_frames)
        Periodogram of the mixture and the noise PSD (> 0).

    Returns
    -------
    np.ndarray, shape (n_freq, n_frames), in ``[xi_min / (1 + xi_min), 1)``
    """
    gamma = np.ascontiguousarray(P / np.maximum(noise, _TINY), dtype=np.float32)
    G = np.empty_like(gamma)
    dd_recursion(gamma, float(alpha), float(10.0 ** (xi_min_db / 10.0)), G)
    return G


def blend_weight(snr_db: float, settings: TrackerSettings) -> float:
    """Weight of the NMF noise estimate (1 - weight: the tracker's) for a block whose NMF masks
    estimate ``snr_db``: 1/2 at ``blend_mid_db``, 1 at ``width/2`` below it, 0 at ``width/2``
    above it."""
    w = 0.5 - (snr_db - settings.blend_mid_db) / max(settings.blend_width_db, 1e-9)
    return float(np.clip(w, 0.0, 1.0))


def tracked_masks(
    masks: np.ndarray,
    V: np.ndarray,
    *,
    hop_seconds: float,
    settings: TrackerSettings | None = None,
) -> np.ndarray:
    """Replace the first source's mask by the decision-directed gain against the blended noise
    PSD (geometrically weighted with the NMF mask, ``mask_weight``); the other sources share
    the rest in proportion to their masks (so the masks still sum to one and the sources to
    the mixture).

    Parameters
    ----------
    masks : np.ndarray, shape (n_sources, n_freq, n_frames)
        Soft masks that sum to one over the sources (the NMF Wiener masks).
    V : np.ndarray, shape (n_freq, n_frames)
        The block's mixture magnitudes.
    hop_seconds : float
        Frame hop, for the time constants.

    Returns
    -------
    np.ndarray, the new masks (same shape, float32)
    """
    s = settings or TrackerSettings()
    masks = np.asarray(masks, dtype=np.float32)
    if masks.shape[0] < 2 or masks.shape[-1] == 0:
        return masks
    V = np.asarray(V, dtype=np.float32)
    P = V * V
    m0 = masks[0]
    N2 = V - m0 * V  # the NMF's estimate of the rest, squared below
    N2 *= N2
    rest = float(N2.sum(dtype=np.float64))
    target = float(np.einsum("ft,ft->", m0, m0 * P, dtype=np.float64))
    if target + rest <= 0.0:  # a silent block: nothing to decide
        return masks
    w = blend_weight(10.0 * np.log10(max(target, 1e-30) / max(rest, 1e-30)), s)
    a_s = _alpha(s.smooth_seconds, hop_seconds)
    weight: np.ndarray | float = w
    nmf_noise = np.maximum(smooth(N2, a_s), _TINY) if w > 0.0 else None
    if s.blend == "local" and nmf_noise is not None:
        # per bin: the NMF's local SNR (both parts smoothed over time) on the same ramp, times
        # the block's weight — the NMF noise estimate where the NMF says noise dominates, the
        # tracker where it says the target does (there its noise estimate is a small remainder,
        # least reliable), and the tracker everywhere in a high-SNR block
        local = np.maximum(smooth(m0 * m0 * P, a_s), _TINY) / nmf_noise
        local = np.log10(local, out=local)
        local *= np.float32(10.0)
        ramp = np.clip(0.5 - (local - s.blend_mid_db) / s.blend_width_db, 0.0, 1.0)
        weight = np.asarray(ramp * np.float32(w), dtype=np.float32)
    if nmf_noise is not None and isinstance(weight, float) and weight >= 1.0:
        noise = nmf_noise
    else:
        noise = min_statistics(P, alpha=a_s, frames=round(s.window_seconds / hop_seconds))
        if nmf_noise is not None:
            # the geometric blend, in the log domain (cheaper than two powers)
            nmf_log = np.log(nmf_noise, out=nmf_noise)
            noise = np.log(noise, out=noise)
            noise += weight * (nmf_log - noise)
            noise = np.exp(noise, out=noise)
    G = dd_gain(P, noise, alpha=_alpha(s.dd_seconds, hop_seconds), xi_min_db=s.xi_min_db)
    return _finish(masks, G, m0, s)


def _finish(masks: np.ndarray, G: np.ndarray, m0: np.ndarray, s: TrackerSettings) -> np.ndarray:
    """The gain weighted with the NMF mask as the first mask; the others share the rest."""
    if s.mask_weight == 0.25:  # the default: fourth roots by square roots (cheap)
        G = G * np.sqrt(np.sqrt(np.maximum(m0, 0.0) / np.maximum(G, _TINY)))
    elif s.mask_weight > 0.0:
        G = G ** np.float32(1.0 - s.mask_weight) * m0 ** np.float32(s.mask_weight)
    out = np.empty_like(masks)
    out[0] = G
    if masks.shape[0] == 2:
        out[1] = 1.0 - G
        return out
    others = masks[1:]
    total = others.sum(axis=0)
    share = np.where(total > 0, others / np.maximum(total, _TINY), 1.0 / others.shape[0])
    out[1:] = share * (1.0 - G)
    return out
