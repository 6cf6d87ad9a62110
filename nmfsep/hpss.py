"""A harmonic/percussive prior for trained separation (issue 12, item 4): pure functions.

Median-filtering HPSS (FitzGerald, "Harmonic/percussive separation using median filtering",
DAFx 2010; after Ono et al., "Separation of a monaural audio signal into harmonic/percussive
components by complementary diffusion on spectrogram", EUSIPCO 2008) tells, at every
time-frequency point, whether the magnitude is smooth along time (harmonic: a sustained
partial) or along frequency (percussive: an onset or a noise burst). NMF bases with a frame
context see some of that, but a pitched source's attack and a drum's ringing partial look alike
to them: bongo vs guitar or a kit vs a strummed guitar share spectra.

The prior (``train --hpss-prior S``): training records each source's *percussive share*
``s_i`` — the magnitude-weighted mean of the HPSS percussive mask over its clips, i.e. how
much of the source is percussive — and separation multiplies every source's Wiener mask by
how well the mixture's HPSS mask at that point agrees with the source,

    ``M_i <- M_i * q_i ** S / sum_j M_j * q_j ** S``,  ``q_i = s_i P + (1 - s_i) (1 - P)``,

a product of experts (the NMF posterior times the HPSS evidence, ``S`` its confidence): where
both sources are as percussive as each other, ``q_i`` is the same for all and the masks are
unchanged; the masks still sum to one, so the sources still sum to the mixture. Cost: two
running medians of ``kernel`` points over the block's magnitudes (about 10 ms per second of
44.1 kHz audio, one thread) and nothing in the NMF iterations.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from numba import njit

from nmfsep.errors import ModelError

__all__ = [
    "KERNEL",
    "METADATA_KEY",
    "percussive_mask",
    "percussive_share",
    "shares_for",
    "tilt_masks",
]

#: Median filter length in frames (harmonic) and bins (percussive): librosa's default of 31
#: (about 1 s at the 128 ms / 75 % overlap STFT, 330 Hz at its 10.8 Hz bins).
KERNEL = 31
#: Where training records the shares in the model's metadata.
METADATA_KEY = "hpss_prior"


@njit(cache=True, nogil=True)
def _running_median_rows(x, half, out):  # pragma: no cover - compiled
    """Median of ``x[r, t - half : t + half + 1]`` for every row ``r`` and column ``t``, the
    window reflected at both ends (scipy's ``mode="reflect"``: ``d c b a | a b c d``)."""
    n_rows, n = x.shape
    k = 2 * half + 1
    win = np.empty(k, dtype=x.dtype)
    for r in range(n_rows):
        row = x[r]
        # the first window, sorted by insertion
        for j in range(k):
            i = j - half
            while i < 0 or i >= n:  # reflect (repeatedly for windows longer than the row)
                i = -i - 1 if i < 0 else 2 * n - i - 1
            v = row[i]
            m = j
            while m > 0 and win[m - 1] > v:
                win[m] = win[m - 1]
                m -= 1
            win[m] = v
        out[r, 0] = win[half]
        for t in range(1, n):
            i_old = t - 1 - half
            while i_old < 0 or i_old >= n:
                i_old = -i_old - 1 if i_old < 0 else 2 * n - i_old - 1
            i_new = t + half
            while i_new < 0 or i_new >= n:
                i_new = -i_new - 1 if i_new < 0 else 2 * n - i_new - 1
            old, new = row[i_old], row[i_new]
            # remove ``old`` (it is in the window), then insert ``new``
            m = 0
            while win[m] != old:
                m += 1
            while m < k - 1:
                win[m] = win[m + 1]
                m += 1
            m = k - 1
            while m > 0 and win[m - 1] > new:
                win[m] = win[m - 1]
                m -= 1
            win[m] = new
            out[r, t] = win[half]


def _median_along(V: np.ndarray, axis: int, kernel: int) -> np.ndarray:
    X = np.ascontiguousarray(V if axis == 1 else V.T, dtype=np.float32)
    out = np.empty_like(X)
    if X.size:
        _running_median_rows(X, kernel // 2, out)
    return out if axis == 1 else np.ascontiguousarray(out.T)


def percussive_mask(V: np.ndarray, *, kernel: int = KERNEL) -> np.ndarray:
    """Soft percussive mask of magnitudes ``V`` (FitzGerald 2010): ``P^2 / (P^2 + H^2)`` with
    ``H`` the median of ``kernel`` frames along time and ``P`` of ``kernel`` bins along
    frequency (margin 1, so the harmonic mask is ``1 - P``); 0.5 where both are zero.

    Parameters
    ----------
    V : np.ndarray, shape (n_freq, n_frames), non-negative
    kernel : int
        Odd median length.

    Returns
    -------
    np.ndarray, shape (n_freq, n_frames), float32 in [0, 1]
    """
    H = _median_along(V, 1, kernel)
    P = _median_along(V, 0, kernel)
    # relative to the larger of the two, so that float32 squares neither overflow nor vanish
    Z = np.maximum(H, P)
    ok = Z > np.finfo(np.float32).tiny
    Zs = np.where(ok, Z, np.float32(1.0))
    h2 = np.square(H / Zs)
    p2 = np.square(P / Zs)
    return np.where(ok, p2 / np.maximum(h2 + p2, np.float32(1e-30)), np.float32(0.5)).astype(
        np.float32, copy=False
    )


def percussive_share(
    V: np.ndarray, *, frames: np.ndarray | None = None, kernel: int = KERNEL
) -> tuple[float, float]:
    """The percussive magnitude of ``V`` and its total magnitude, over ``frames`` (default all):
    the share of a source is the sum of the first over its clips divided by the second's.

    Parameters
    ----------
    V : np.ndarray, shape (n_freq, n_frames)
        A clip's magnitudes (HPSS needs the clip's consecutive frames, not a sample).
    frames : np.ndarray of int, optional
        The frames counted (e.g. the audible ones).

    Returns
    -------
    percussive, total : float
    """
    Pm = percussive_mask(V, kernel=kernel)
    if frames is not None:
        V, Pm = V[:, frames], Pm[:, frames]
    return float(np.sum(V * Pm, dtype=np.float64)), float(np.sum(V, dtype=np.float64))


def tilt_masks(
    masks: np.ndarray, percussive: np.ndarray, shares: np.ndarray, *, strength: float
) -> np.ndarray:
    """Masks tilted toward the sources the HPSS evidence agrees with (the module's formula).

    Parameters
    ----------
    masks : np.ndarray, shape (n_sources, n_freq, n_frames)
        Soft masks summing to one over the sources.
    percussive : np.ndarray, shape (n_freq, n_frames)
        The mixture's percussive mask (:func:`percussive_mask`).
    shares : np.ndarray, shape (n_sources,)
        Each source's percussive share in [0, 1] (0.5: no opinion).
    strength : float
        Exponent ``S`` of the evidence (0: the masks unchanged).

    Returns
    -------
    np.ndarray, same shape as ``masks``, float32, summing to one over the sources (where every
    tilted mask is zero, the untilted masks are kept)
    """
    if strength <= 0.0:
        return masks
    s = np.clip(np.asarray(shares, dtype=np.float32), 0.0, 1.0)[:, None, None]
    q = s * percussive[None] + (np.float32(1.0) - s) * (np.float32(1.0) - percussive[None])
    # floored so that a source with share 0 or 1 is never silenced outright by the prior alone
    tilted = masks * np.power(np.maximum(q, np.float32(1e-3)), np.float32(strength))
    total = tilted.sum(axis=0, keepdims=True)
    ok = total > np.float32(1e-30)
    out = np.where(ok, tilted / np.where(ok, total, np.float32(1.0)), masks)
    return out.astype(np.float32, copy=False)


def shares_for(metadata: Mapping[str, Any] | None, names: Sequence[str]) -> np.ndarray | None:
    """Each output source's percussive share as recorded by training (``metadata
    ["hpss_prior"]["percussive_share"]``); 0.5 (no opinion) for a source the model does not
    have (``residual``). None: the model records none.

    Raises
    ------
    ModelError
        The record exists but is malformed (not a share in [0, 1] per source).
    """
    record = metadata.get(METADATA_KEY) if isinstance(metadata, Mapping) else None
    if record is None:
        return None
    table = record.get("percussive_share") if isinstance(record, Mapping) else None
    if not isinstance(table, Mapping):
        raise ModelError(f"model metadata {METADATA_KEY!r} lacks a 'percussive_share' table")
    out = np.full(len(names), 0.5, dtype=np.float32)
    for i, name in enumerate(names):
        if name not in table:
            continue
        value = table[name]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
            raise ModelError(
                f"model metadata {METADATA_KEY!r}: percussive share of {name!r} must be a "
                f"number in [0, 1], got {value!r}"
            )
        out[i] = float(value)
    return out
