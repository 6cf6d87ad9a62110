"""Checks of parameters shared by the library and the command line, in one place.

One beta parser (:func:`parse_beta`), and small checks for numbers, counts, choices, sample rates
and audio arrays. Each raises :class:`~nmfsep.errors.ParameterError` with a one-line message that
names the parameter. Imports numpy only inside :func:`check_audio`, so the command line can use
the rest before the numerical stack is loaded.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable
from typing import Any

from nmfsep.errors import ParameterError

#: Divergence names accepted wherever a beta is: a name, or any finite real number.
BETA_NAMES = {
    "euclidean": 2.0,
    "frobenius": 2.0,
    "eu": 2.0,
    "kullback-leibler": 1.0,
    "kl": 1.0,
    "itakura-saito": 0.0,
    "is": 0.0,
}


def parse_beta(beta: Any, *, name: str = "beta") -> float:
    """The beta of a beta-divergence, from a number, a numeric string or a name.

    Names (case and surrounding spaces ignored): ``euclidean``/``frobenius``/``eu`` (2),
    ``kullback-leibler``/``kl`` (1), ``itakura-saito``/``is`` (0). Booleans, NaN and infinities
    are refused.
    """
    if isinstance(beta, str):
        key = beta.strip().lower()
        if key in BETA_NAMES:
            return BETA_NAMES[key]
        try:
            value = float(key)
        except ValueError:
            names = ", ".join(sorted(BETA_NAMES))
            raise ParameterError(
                f"unknown {name} {beta!r}: use a number or one of {names}"
            ) from None
        if not math.isfinite(value):
            raise ParameterError(f"{name} must be a finite number, got {beta!r}")
        return value
    if isinstance(beta, bool) or not isinstance(beta, numbers.Real):
        raise ParameterError(f"{name} must be a real number or a divergence name, got {beta!r}")
    value = float(beta)
    if not math.isfinite(value):
        raise ParameterError(f"{name} must be a finite number, got {beta!r}")
    return value


def check_number(
    name: str,
    value: Any,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
) -> float:
    """A finite real number in ``[low, high]`` (``(low, high]`` with ``low_open``)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ParameterError(f"{name} must be a number, got {value!r}")
    x = float(value)
    bad = not math.isfinite(x)
    if low is not None:
        bad = bad or (x <= low if low_open else x < low)
    if high is not None:
        bad = bad or x > high
    if bad:
        lo = "" if low is None else (f"> {low:g}" if low_open else f">= {low:g}")
        hi = "" if high is None else f"<= {high:g}"
        rule = " and ".join(r for r in (lo, hi) if r) or "finite"
        raise ParameterError(f"{name} must be a finite number {rule}, got {value!r}")
    return x


def check_int(name: str, value: Any, *, low: int = 0, high: int | None = None) -> int:
    """An integer (not a bool) in ``[low, high]``; integral floats such as ``3.0`` are accepted."""
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ParameterError(f"{name} must be an integer, got {value!r}")
    v = int(value)
    if v < low or (high is not None and v > high):
        rule = f">= {low}" if high is None else f"in [{low}, {high}]"
        raise ParameterError(f"{name} must be an integer {rule}, got {value!r}")
    return v


def check_odd(name: str, value: Any, *, high: int | None = None) -> int:
    """A positive odd integer (a patch centred on a frame)."""
    v = check_int(name, value, low=1, high=high)
    if v % 2 == 0:
        raise ParameterError(f"{name} must be odd (the patch is centred on a frame), got {v}")
    return v


def check_choice(name: str, value: Any, choices: Iterable[str]) -> str:
    """One of ``choices`` (exact string)."""
    options = tuple(choices)
    if not isinstance(value, str) or value not in options:
        raise ParameterError(f"{name} must be one of {', '.join(options)}, got {value!r}")
    return value


def check_seed(value: Any) -> int | None:
    """A random seed: None or an integer in ``[0, 2**32 - 1]`` (numpy's range)."""
    if value is None:
        return None
    return check_int("seed", value, low=0, high=2**32 - 1)


def check_sr(sr: Any, *, name: str = "sr") -> int:
    """A sample rate: a positive integer (the limits of what nmfsep processes are in
    :mod:`nmfsep.limits`)."""
    return check_int(name, sr, low=1)


#: Most channels of an array given to the array API (separate, cluster_separate)
MAX_ARRAY_CHANNELS = 1024


def check_audio(y: Any, sr: Any) -> Any:
    """Audio as float32 ``(n_channels, n_samples)`` (1-D input is one channel); finite, non-empty.

    Returns
    -------
    np.ndarray, shape (n_channels, n_samples), float32
    """
    import numpy as np

    check_sr(sr)
    a = np.asarray(y)
    if a.ndim == 1:
        a = a[np.newaxis, :]
    if a.ndim != 2:
        raise ParameterError(f"audio must have shape (n_channels, n_samples), got {a.shape}")
    if not (np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer)):
        raise ParameterError(f"audio must be real numbers, got dtype {a.dtype}")
    if a.shape[0] == 0 or a.shape[1] == 0:
        raise ParameterError(f"audio has no samples (shape {a.shape})")
    if a.shape[0] > MAX_ARRAY_CHANNELS >= a.shape[1]:
        raise ParameterError(
            f"audio must have shape (n_channels, n_samples), got {a.shape}: samples by channels"
            " (soundfile's layout)? pass its transpose, y.T"
        )
    a = a.astype(np.float32, copy=False)
    if not np.isfinite(a).all():
        raise ParameterError("audio contains NaN or infinite samples")
    return a
