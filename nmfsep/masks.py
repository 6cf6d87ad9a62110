"""Time-frequency masks from per-source magnitude estimates.

Given non-negative estimates ``P_i`` (e.g. ``W_i @ H_i``) of each source's magnitude spectrogram,
the generalised Wiener (soft) mask of source ``i`` is ``M_i = P_i**p / sum_j P_j**p``: masks are in
``[0, 1]`` and sum to one over the sources, so the masked sources add back up to the mixture.
``p = 1`` is the classic NMF "ratio mask" on magnitudes, ``p = 2`` the Wiener filter on powers.
"""

from __future__ import annotations

import numpy as np

from nmfsep.errors import ParameterError

__all__ = ["apply_masks", "binary_masks", "wiener_masks"]


def _check_parts(parts: np.ndarray) -> np.ndarray:
    P = np.asarray(parts)
    if P.ndim < 2:
        raise ParameterError(f"parts must have shape (n_sources, ...), got shape {P.shape}")
    if P.shape[0] < 1:
        raise ParameterError("parts must hold at least one source")
    if not (np.issubdtype(P.dtype, np.floating) or np.issubdtype(P.dtype, np.integer)):
        raise ParameterError(f"parts must be real numbers, got dtype {P.dtype}")
    if P.dtype != np.float64:
        P = P.astype(np.float32, copy=False)
    if P.size and not np.isfinite(P).all():
        raise ParameterError("parts contain NaN or infinite values")
    if P.size and P.min() < 0:
        raise ParameterError("parts must be non-negative")
    return P


def wiener_masks(parts: np.ndarray, *, power: float = 2.0, eps: float | None = None) -> np.ndarray:
    """Generalised Wiener (soft) masks ``M_i = P_i**power / sum_j P_j**power``.

    Computed as ``(P_i / max_j P_j)**power`` normalised, so that no power overflows or
    underflows to a NaN whatever the scale of ``parts``.

    Parameters
    ----------
    parts : np.ndarray, shape (n_sources, n_freq, n_frames), non-negative
        Magnitude estimates of each source (any trailing shape is accepted).
    power : float
        Exponent ``p > 0`` (``1``: ratio of magnitudes, ``2``: Wiener filter on powers).
    eps : float, optional
        Where every source's estimate is ``<= eps`` the bin is split equally (``1/n_sources``
        each). Default: the smallest positive normal number of the dtype (i.e. only exact zeros).

    Returns
    -------
    np.ndarray, same shape as ``parts``
        float32 (float64 when ``parts`` is float64), values in ``[0, 1]``, summing to 1 over
        axis 0 (to rounding) everywhere; never NaN.

    Raises
    ------
    ParameterError
        ``power`` not a finite positive number, ``parts`` negative, non-finite or badly shaped.
    """
    P = _check_parts(parts)
    try:
        p = float(power)
    except (TypeError, ValueError):
        raise ParameterError(f"mask power must be a positive number, got {power!r}") from None
    if not np.isfinite(p) or p <= 0:
        raise ParameterError(f"mask power must be a positive number, got {power!r}")
    dtype = P.dtype
    floor = float(np.finfo(dtype).tiny) if eps is None else float(eps)
    if not np.isfinite(floor) or floor < 0:
        raise ParameterError(f"eps must be a non-negative number, got {eps!r}")
    if P.size == 0:
        return np.zeros(P.shape, dtype=dtype)

    peak = P.max(axis=0)
    silent = peak <= floor
    if floor == 0.0:
        silent = peak <= 0
    safe_peak = np.where(silent, np.ones((), dtype=dtype), peak)
    M = np.divide(P, safe_peak, dtype=dtype)  # in [0, 1], the loudest source is exactly 1
    M[:, silent] = 1.0  # equal split where every source is ~0
    if p == 2.0:
        np.multiply(M, M, out=M)
    elif p != 1.0:
        np.power(M, dtype.type(p), out=M)
    total = M.sum(axis=0)  # >= 1 everywhere (the loudest source contributes 1)
    np.divide(M, total, out=M)
    return M


def binary_masks(parts: np.ndarray) -> np.ndarray:
    """Binary masks: each bin goes entirely to the source with the largest estimate.

    Ties go to the lowest source index (so masks still sum to exactly one).

    Parameters
    ----------
    parts : np.ndarray, shape (n_sources, n_freq, n_frames), non-negative

    Returns
    -------
    np.ndarray, same shape, float32 (float64 for float64 input), values 0 or 1
    """
    P = _check_parts(parts)
    winner = np.argmax(P, axis=0) if P.size else np.zeros(P.shape[1:], dtype=np.intp)
    idx = np.arange(P.shape[0]).reshape((-1,) + (1,) * (P.ndim - 1))
    return (idx == winner[np.newaxis]).astype(P.dtype)


def apply_masks(masks: np.ndarray, X: np.ndarray) -> np.ndarray:
    """Apply one mask per source to a (complex) spectrogram.

    Parameters
    ----------
    masks : np.ndarray, shape (n_sources, n_freq, n_frames) or (n_sources, *X.shape), real
        Typically from :func:`wiener_masks`; the same mask is used for every channel when its
        shape is ``(n_sources, n_freq, n_frames)``.
    X : np.ndarray, shape (..., n_freq, n_frames), complex (or real)
        Mixture STFT, e.g. ``(n_channels, n_freq, n_frames)``.

    Returns
    -------
    np.ndarray, shape (n_sources, *X.shape)
        ``masks[i] * X`` for each source, with ``X``'s dtype (complex64 stays complex64).
        Written into one pre-allocated array, no other full-size temporaries.
    """
    M = np.asarray(masks)
    X = np.asarray(X)
    if M.ndim < 1 or M.shape[0] < 1:
        raise ParameterError(f"masks must have shape (n_sources, ...), got {M.shape}")
    if np.iscomplexobj(M) or not (
        np.issubdtype(M.dtype, np.floating) or np.issubdtype(M.dtype, np.integer)
    ):
        raise ParameterError(f"masks must be real numbers, got dtype {M.dtype}")
    if X.ndim < 2:
        raise ParameterError(f"X must have shape (..., n_freq, n_frames), got {X.shape}")
    try:
        shape = np.broadcast_shapes(M.shape[1:], X.shape)
    except ValueError:
        shape = None
    if shape != X.shape:
        raise ParameterError(
            f"masks of shape {M.shape} do not fit a spectrogram of shape {X.shape}"
        )
    if np.iscomplexobj(X):
        dtype = np.result_type(X.dtype, np.complex64)
    else:
        dtype = np.result_type(X.dtype, np.float32)
    out = np.empty((M.shape[0], *X.shape), dtype=dtype)
    for i in range(M.shape[0]):
        np.multiply(X, M[i], out=out[i], casting="same_kind")
    return out
