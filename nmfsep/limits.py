"""The one table of limits: what an input file, a model or an option may imply.

Every number a file header, a model file or a command-line option can make large enough to
exhaust memory (or small enough to make the result meaningless) is bounded here, and checked
*before* anything is allocated. The constants are plain ints/floats (import them for option
help texts); the ``check_*`` helpers raise :class:`~nmfsep.errors.ParameterError` by default
(an option or API argument) or the error class the caller passes (``AudioError`` for a file
header, ``ModelError`` for a model file), always with a one-line message naming the quantity,
the value and the limit.

This module imports only the standard library and :mod:`nmfsep.errors` (cheap to import from
the CLI before numpy).

Examples
--------
>>> from nmfsep import limits
>>> limits.check_sample_rate(16000, what="--sr")
16000
>>> limits.check_count("-k/--components", 32, limits.MAX_COMPONENTS)
32
>>> limits.check_memory("STFT", rows=513, cols=10_000, itemsize=8)  # bytes, or raises
41040000
"""

from __future__ import annotations

import math
import numbers
import os
from typing import Any

from nmfsep.errors import NmfsepError, ParameterError

__all__ = [
    "MAX_ARRAY_BYTES",
    "MAX_CHANNELS",
    "MAX_CLUSTER_SOURCES",
    "MAX_COMPONENTS",
    "MAX_COMPONENTS_TOTAL",
    "MAX_CONTEXT",
    "MAX_FRAMES",
    "MAX_FREE_COMPONENTS",
    "MAX_METADATA_CHARS",
    "MAX_MODEL_BYTES",
    "MAX_NAME_CHARS",
    "MAX_N_FFT",
    "MAX_SAMPLE_RATE",
    "MAX_SECONDS",
    "MAX_SOURCES",
    "MAX_TEMPLATE_WIDTH",
    "MIN_N_FFT",
    "MIN_SAMPLE_RATE",
    "check_channels",
    "check_count",
    "check_memory",
    "check_n_fft",
    "check_sample_rate",
    "check_seconds",
    "estimate_bytes",
    "format_bytes",
]

# ---------------------------------------------------------------------------------------------
# the table

#: Highest sample rate (Hz) accepted anywhere (file header, model, ``--sr``): 768 kHz is the
#: highest rate real converters offer; a header saying more is damaged or hostile (2**31-1 Hz
#: would make a resampler allocate gigabytes for a 32 KB file).
MAX_SAMPLE_RATE = 768_000
#: Lowest sample rate (Hz): below 1 kHz there is no audio band left to separate (an 8 Hz file
#: gives STFT frames of minutes and all-zero outputs); telephone audio is 8 kHz.
MIN_SAMPLE_RATE = 1_000
#: Most channels in an input or output file: 256 covers every multichannel format in use
#: (Ambisonics of order 15 needs 256); 65535 channels times a block is gigabytes.
MAX_CHANNELS = 256
#: Smallest FFT size: fewer than 16 samples per frame is not a spectrum.
MIN_N_FFT = 16
#: Largest FFT size: 2**16 samples is 1.4 s at 48 kHz, far longer than any useful analysis
#: window; 2**27 would make one basis matrix of 256 MiB per column.
MAX_N_FFT = 1 << 16
#: Most bases (components) per source, and per ``-k``/``-n`` option: more than 1024 spectral
#: shapes per source only memorises the training frames.
MAX_COMPONENTS = 1024
#: Most bases in one model (all sources together): bounds W and every (K, frames) array.
MAX_COMPONENTS_TOTAL = 8192
#: Most free (learned-on-the-mixture) components of a semi-supervised separation.
MAX_FREE_COMPONENTS = 1024
#: Most sources in one model (each becomes an output file per input).
MAX_SOURCES = 256
#: Most sources ``cluster`` splits a mixture into (``-n/--n-sources``).
MAX_CLUSTER_SOURCES = 64
#: Largest frame context (odd): 31 frames is about 1 s at the default STFT; rows of W grow
#: linearly with it.
MAX_CONTEXT = 31
#: Widest field in an output-name template (``{track:>N}``): longer than any file name can be.
MAX_TEMPLATE_WIDTH = 255
#: Most STFT frames of a whole-file (non-streamed) operation: 2**22 frames is 12 hours at the
#: default hop of 10 ms; beyond it even the activations alone need gigabytes.
MAX_FRAMES = 1 << 22
#: Largest |beta| of the command line's and options' divergences: the MU updates raise the model
#: to the power beta - 1, which overflows float32 beyond this on ordinary spectra (the library's
#: ``fit_nmf`` takes any beta). Common choices are 0 (IS), 1 (KL), 2 (EU).
MAX_ABS_BETA = 5.0
#: Largest Wiener mask exponent: at 64 the mask is already binary to within float32.
MAX_MASK_POWER = 64.0
#: Largest sparsity penalty (L1/L2) on activations at unit mean level: far past the point where
#: every activation is zero.
MAX_PENALTY = 1e6
#: Most STFT frames that overlap one window (``hop_length >= win_length / 32``, 97 % overlap):
#: each sample is in at most this many frames, so a spectrogram's size stays a bounded multiple
#: of its audio's (``--hop-length 1`` made a 25 s clip take 7 GB).
MAX_FRAMES_PER_WINDOW = 32
#: Longest audio (seconds) a whole-file operation (evaluate, plot, cluster) may load: 4 hours.
MAX_SECONDS = 4 * 3600.0
#: Largest single array an input or option may make us allocate: 2 GiB.
MAX_ARRAY_BYTES = 2 << 30
#: Largest total of the arrays in a model file: 1 GiB (the built-in model is about 5 MiB).
MAX_MODEL_BYTES = 1 << 30
#: Largest JSON metadata of a model file, in characters (training file lists included).
MAX_METADATA_CHARS = 16 << 20
#: Most weights in a model's learned mask refiner (nmfsep.refine): the built-in one has 0.7 M;
#: a file claiming more is refused before its arrays are read.
MAX_REFINER_WEIGHTS = 4_000_000
#: Longest source name (used as a file-name component).
MAX_NAME_CHARS = 64


# ---------------------------------------------------------------------------------------------
# checks


def _fail(error: type[NmfsepError], message: str, path: Any) -> NmfsepError:
    return error(message, path=path) if path is not None else error(message)


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _as_real(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return None
    try:
        x = float(value)
    except (OverflowError, ValueError):
        return None
    return x if math.isfinite(x) else None


def check_count(
    name: str,
    value: object,
    maximum: int,
    *,
    minimum: int = 1,
    error: type[NmfsepError] = ParameterError,
    path: str | os.PathLike[str] | None = None,
) -> int:
    """``value`` as an int in ``[minimum, maximum]``, else ``error``.

    Parameters
    ----------
    name : str
        What the value is, as the user knows it (``"-k/--components"``, ``"channels"``).
    value : object
        An integral number (bools and non-integral floats are refused).
    maximum, minimum : int
        Inclusive bounds.
    error : NmfsepError subclass
        Raised on failure (default :class:`ParameterError`).
    path : path, optional
        The file the value came from (named in the message).

    Returns
    -------
    int
    """
    x = _as_real(value)
    if x is None or not x.is_integer():
        raise _fail(error, f"{name} must be an integer, got {_show(value)}", path)
    n = int(x) if not isinstance(value, numbers.Integral) else int(value)  # exact for huge ints
    if n < minimum:
        raise _fail(error, f"{name} must be at least {minimum}, got {n}", path)
    if n > maximum:
        raise _fail(error, f"{name} {n} is over the limit of {maximum}", path)
    return n


def check_sample_rate(
    sr: object,
    *,
    what: str = "sample rate",
    where: str = "",
    error: type[NmfsepError] = ParameterError,
    path: str | os.PathLike[str] | None = None,
) -> int:
    """A sample rate as an int in ``[MIN_SAMPLE_RATE, MAX_SAMPLE_RATE]`` Hz, else ``error``.

    ``what`` names the quantity (``"--sr"``, ``"sample rate"``, ``"model sample rate"``) and
    ``where`` is put after the value (``" in the header"``): the message reads e.g.
    ``"sample rate 4 Hz in the header is below the minimum of 1000 Hz"`` or
    ``"sample rate 0 Hz in the header is not valid"``.
    """
    x = _as_real(sr)
    if x is None or not x.is_integer():
        raise _fail(error, f"{what}{where} must be a whole number of Hz, got {_show(sr)}", path)
    n = int(x) if not isinstance(sr, numbers.Integral) else int(sr)
    # a hostile 1e300 would print its 301 digits: large values in short scientific form
    shown = f"{what} {n if abs(n) < 10**12 else f'{float(n):.3g}'} Hz{where}"
    if n <= 0:
        raise _fail(error, f"{shown} is not valid", path)
    if n < MIN_SAMPLE_RATE:
        raise _fail(error, f"{shown} is below the minimum of {MIN_SAMPLE_RATE} Hz", path)
    if n > MAX_SAMPLE_RATE:
        raise _fail(error, f"{shown} is over the limit of {MAX_SAMPLE_RATE} Hz", path)
    return n


def check_array_rate(sr: object) -> int:
    """The rate of audio handed to the library as an array: a whole number of Hz in
    ``[1, MAX_SAMPLE_RATE]`` (no minimum: a low rate is the caller's choice), else
    ParameterError. The STFT window grows with the rate: 1e8 Hz made 4000 samples take all
    of 24 GB."""
    x = _as_real(sr)
    if isinstance(sr, bool) or x is None or not x.is_integer() or not 1 <= x <= MAX_SAMPLE_RATE:
        raise ParameterError(f"sr must be an integer in [1, {MAX_SAMPLE_RATE}], got {sr!r}")
    return int(x)


def check_channels(
    channels: object,
    *,
    error: type[NmfsepError] = ParameterError,
    path: str | os.PathLike[str] | None = None,
) -> int:
    """A channel count in ``[1, MAX_CHANNELS]``, else ``error``."""
    return check_count("number of channels", channels, MAX_CHANNELS, error=error, path=path)


def check_n_fft(
    n_fft: object,
    *,
    what: str = "n_fft",
    error: type[NmfsepError] = ParameterError,
    path: str | os.PathLike[str] | None = None,
) -> int:
    """An FFT size in ``[MIN_N_FFT, MAX_N_FFT]``, else ``error``."""
    return check_count(what, n_fft, MAX_N_FFT, minimum=MIN_N_FFT, error=error, path=path)


def check_seconds(
    seconds: object,
    *,
    what: str = "duration",
    maximum: float = MAX_SECONDS,
    error: type[NmfsepError] = ParameterError,
    path: str | os.PathLike[str] | None = None,
) -> float:
    """A finite, positive number of seconds at most ``maximum``, else ``error``."""
    x = _as_real(seconds)
    if x is None or x <= 0:
        raise _fail(
            error, f"{what} must be a positive number of seconds, got {_show(seconds)}", path
        )
    if x > maximum:
        raise _fail(error, f"{what} {x:g} s is over the limit of {maximum:g} s", path)
    return x


def estimate_bytes(*dims: object, itemsize: int = 4) -> int:
    """Bytes of an array of shape ``dims`` (exact integer arithmetic: never overflows)."""
    total = int(itemsize)
    for d in dims:
        n = int(d)  # type: ignore[call-overload]
        total *= max(n, 0)
    return total


def check_memory(
    what: str,
    *,
    rows: object,
    cols: object,
    itemsize: int = 4,
    copies: int = 1,
    maximum: int = MAX_ARRAY_BYTES,
    error: type[NmfsepError] = ParameterError,
    path: str | os.PathLike[str] | None = None,
) -> int:
    """Bytes implied by ``copies`` arrays of ``rows x cols`` items; ``error`` when over ``maximum``.

    Call it with the shape an input or option implies *before* allocating: the message says what
    would be allocated, e.g. ``"model bases would need 3.3 GiB (875000 x 1024 float32), over the
    limit of 1 GiB"``.

    Returns
    -------
    int
        The estimate in bytes.
    """
    n = estimate_bytes(rows, cols, itemsize=itemsize) * max(int(copies), 1)
    if n > maximum:
        kind = {2: "int16", 4: "float32", 8: "float64", 16: "complex128"}.get(
            int(itemsize), f"{itemsize}-byte"
        )
        raise _fail(
            error,
            f"{what} would need {format_bytes(n)} ({int(rows)} x {int(cols)} {kind}"  # type: ignore[call-overload]
            f"{f' x {copies}' if copies > 1 else ''}), over the limit of {format_bytes(maximum)}",
            path,
        )
    return n


def format_bytes(n: int) -> str:
    """``1536`` -> ``"1.5 KiB"`` (binary units)."""
    x = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if x < 1024 or unit == "PiB":
            return f"{x:.0f} {unit}" if unit == "B" else f"{x:.3g} {unit}"
        x /= 1024
    return f"{n} B"  # pragma: no cover
