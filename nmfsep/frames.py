"""Frame context: spectro-temporal patches for NMF (stacked frames), and their inverse.

A basis of context ``c`` is a patch of ``c`` consecutive spectra stacked into ``c * n_freq`` rows
(frame ``t - c//2`` first): bases learned on such patches model how a source's spectrum moves
over ~100 ms, which separates speech from noise better than single spectra. It is convolutive
NMF (Smaragdis, "Non-negative matrix factor deconvolution", ICA 2004) in its cheapest, stacked
form: one NMF on a taller matrix instead of a sum of shifted products.
"""

from __future__ import annotations

import numpy as np

__all__ = ["stack_frames", "unstack_frames"]


def stack_frames(V: np.ndarray, context: int, columns: np.ndarray | None = None) -> np.ndarray:
    """Stack each frame with its neighbours.

    Column ``t`` of the result holds frames ``t - c//2 ... t + c//2`` of ``V`` one above the
    other (edges repeat the first / last frame).

    Parameters
    ----------
    V : np.ndarray, shape (n_freq, n_frames)
    context : int
        Odd number of frames per patch; 1 returns ``V`` itself.
    columns : np.ndarray of int, optional
        Only these columns (a subset of frames: training on a sample).

    Returns
    -------
    np.ndarray, shape (context * n_freq, n_frames or len(columns))
    """
    F, T = V.shape
    t = np.arange(T) if columns is None else np.asarray(columns)
    if context == 1:
        return V if columns is None else V[:, t]
    half = context // 2
    out = np.empty((context, F, t.size), dtype=V.dtype)
    for j in range(context):
        np.take(V, np.clip(t + j - half, 0, T - 1), axis=1, out=out[j])
    return out.reshape(context * F, t.size)


def unstack_frames(S: np.ndarray, context: int) -> np.ndarray:
    """Inverse of :func:`stack_frames` for model outputs: average each frame's estimates.

    Frame ``t`` is estimated by block ``j`` of column ``t - j + c//2`` for every ``j`` where
    that column exists; the estimates are averaged.

    Parameters
    ----------
    S : np.ndarray, shape (context * n_freq, n_frames)

    Returns
    -------
    np.ndarray, shape (n_freq, n_frames)
    """
    if context == 1:
        return S
    F, T = S.shape[0] // context, S.shape[1]
    half = context // 2
    blocks = S.reshape(context, F, T)
    acc = np.zeros((F, T), dtype=S.dtype)
    count = np.zeros(T, dtype=S.dtype)
    for j in range(context):
        shift = j - half  # column c models frame c + shift
        lo, hi = max(0, -shift), min(T, T - shift)
        if lo < hi:
            acc[:, lo + shift : hi + shift] += blocks[j, :, lo:hi]
            count[lo + shift : hi + shift] += 1
    acc /= count
    return acc
