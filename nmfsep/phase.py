"""Phase-aware reconstruction: multiple input spectrogram inversion (MISI) with mixture
consistency, inside one block of frames.

The Wiener-masked sources ``Y_i = M_i X`` all carry the mixture's phase, so their STFTs are not
*consistent* (not the STFT of any signal), and the overlap-add smears each source's error into
its neighbours. MISI (Gunawan & Sen 2010; the consistent-Wiener view of Le Roux & Vincent 2013)
alternates: invert every source, share the time-domain error of their sum equally among them
(mixture consistency: the sources sum to the mixture), take the STFT again, and keep each
source's new phase with its masked magnitude ``|M_i X|``. A last step shares the STFT-domain
error equally, so the sources sum to the mixture's STFT exactly and the outputs still add up to
the input.

Everything happens on the frames of one block (with its context frames), so the result depends
only on the block's samples: block boundaries are fixed frame positions and outputs stay the same
for any chunking of the input. Cost per iteration: one inverse and one forward FFT per source and
frame (about twice the cost of the plain reconstruction, per iteration).
"""

from __future__ import annotations

import numpy as np

from nmfsep.spectral import STFTConfig, istft_rows, normalise, stft_rows, window_sum

__all__ = ["misi"]


def misi(
    X: np.ndarray,
    masks: np.ndarray,
    x: np.ndarray,
    config: STFTConfig,
    window: np.ndarray,
    window_sq: np.ndarray,
    n_iter: int,
) -> np.ndarray:
    """Sources' STFTs after ``n_iter`` MISI iterations, summing to ``X`` exactly.

    Parameters
    ----------
    X : np.ndarray, shape (channels, n_frames, n_freq), complex
        Mixture STFT in the rows layout of :func:`nmfsep.spectral.stft_rows` of ``x``.
    masks : np.ndarray, shape (n_sources, n_freq, n_frames), real
        Soft masks (summing to one over the sources).
    x : np.ndarray, shape (channels, (n_frames - 1) * hop + n_fft)
        The samples ``X`` was taken from.
    config, window, window_sq
        The STFT, its window and squared window.
    n_iter : int
        Iterations (0: the masked mixture, ``M_i X``).

    Returns
    -------
    np.ndarray, shape (n_sources, channels, n_frames, n_freq), complex
    """
    n_src = masks.shape[0]
    M = np.ascontiguousarray(masks.transpose(0, 2, 1))[:, np.newaxis]  # (S, 1, frames, freq)
    Y = M * X[np.newaxis]
    if n_iter > 0:
        A = np.abs(Y)
        wss = window_sum(window_sq, X.shape[1], config.hop_length)
        for _ in range(n_iter):
            y = np.stack([normalise(istft_rows(Y[i], config, window), wss) for i in range(n_src)])
            y += (x - y.sum(axis=0)) / np.float32(n_src)
            for i in range(n_src):
                Z = stft_rows(np.ascontiguousarray(y[i]), config, window)
                mag = np.abs(Z)
                tiny = np.finfo(np.float32).tiny
                # keep the new phase, the masked magnitude; where Z vanishes, the old phase
                unit = np.divide(Z, mag, out=np.zeros_like(Z), where=mag > tiny)
                old = np.abs(Y[i]) > tiny
                unit = np.where(mag > tiny, unit, np.divide(Y[i], np.abs(Y[i]) + tiny) * old)
                Y[i] = A[i] * unit
    Y += (X[np.newaxis] - Y.sum(axis=0)) / np.float32(n_src)
    return Y
