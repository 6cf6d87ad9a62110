"""Short-time Fourier transform settings and transforms (librosa under the hood).

Orientation is audio's: a spectrogram has shape ``(..., n_freq, n_frames)`` with
``n_freq = n_fft // 2 + 1``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from nmfsep.errors import ParameterError

_WINDOWS = ("hann", "hamming", "blackman", "sqrt_hann")


@dataclass(frozen=True)
class STFTConfig:
    """How a signal is cut into frames.

    Parameters
    ----------
    n_fft : int
        FFT size in samples (``n_freq = n_fft // 2 + 1``).
    hop_length : int
        Samples between the starts of consecutive frames.
    win_length : int, optional
        Window length in samples, at most ``n_fft``; defaults to ``n_fft``.
    window : str
        Window name understood by :func:`scipy.signal.get_window` (``"hann"`` by default).
    """

    n_fft: int = 1024
    hop_length: int = 256
    win_length: int | None = None
    window: str = "hann"

    def __post_init__(self) -> None:
        n_fft = _as_int(self.n_fft)
        if n_fft is None or n_fft < 16:
            raise ParameterError(f"n_fft must be an integer >= 16, got {self.n_fft!r}")
        win = n_fft if self.win_length is None else _as_int(self.win_length)
        if win is None or not 1 <= win <= n_fft:
            raise ParameterError(
                f"win_length must be in [1, n_fft={n_fft}], got {self.win_length!r}"
            )
        hop = _as_int(self.hop_length)
        if hop is None or not 1 <= hop <= win:
            raise ParameterError(
                f"hop_length must be in [1, win_length={win}], got {self.hop_length!r}"
            )
        if not isinstance(self.window, str) or self.window not in _WINDOWS:
            raise ParameterError(
                f"window must be one of {', '.join(_WINDOWS)}, got {self.window!r}"
            )
        object.__setattr__(self, "n_fft", n_fft)
        object.__setattr__(self, "hop_length", hop)
        object.__setattr__(self, "win_length", win)

    @property
    def n_freq(self) -> int:
        """Number of frequency bins, ``n_fft // 2 + 1``."""
        return self.n_fft // 2 + 1

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form (for model metadata)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> STFTConfig:
        """Inverse of :meth:`to_dict`; unknown keys are refused."""
        if not isinstance(d, dict):
            raise ParameterError(f"bad STFT settings {d!r}: not a mapping")
        try:
            return cls(**d)
        except TypeError as exc:
            raise ParameterError(f"bad STFT settings {d!r}: {exc}") from None

    def frequencies(self, sr: float) -> np.ndarray:
        """Centre frequency of each bin in Hz, shape ``(n_freq,)``."""
        return np.linspace(0.0, sr / 2.0, self.n_freq)

    def n_frames(self, n_samples: int) -> int:
        """Number of frames :func:`stft` gives for a signal of ``n_samples`` (centred frames)."""
        return 1 + n_samples // self.hop_length


def _as_int(value: object) -> int | None:
    """``value`` as an int when it is an integral number (not a bool), else None."""
    if isinstance(value, (bool, np.bool_)):
        return None
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)) and np.isfinite(value) and float(value).is_integer():
        return int(value)
    return None


def _window(config: STFTConfig) -> Any:
    if config.window == "sqrt_hann":
        import scipy.signal

        return np.sqrt(scipy.signal.get_window("hann", config.win_length, fftbins=True))
    return config.window


def stft(y: np.ndarray, config: STFTConfig) -> np.ndarray:
    """Complex STFT of ``y``.

    Parameters
    ----------
    y : np.ndarray, shape (..., n_samples), real
        Signal(s); float32 gives complex64.
    config : STFTConfig

    Returns
    -------
    np.ndarray, shape (..., n_freq, n_frames), complex
    """
    import librosa

    n_samples = y.shape[-1]
    if n_samples < config.n_fft:
        # librosa warns on signals shorter than n_fft; zero-padding the end first gives exactly
        # the same frames (centred frames are zero-padded anyway), so pad and keep n_frames.
        pad = [(0, 0)] * (y.ndim - 1) + [(0, config.n_fft - n_samples)]
        S = stft(np.pad(y, pad), config)
        return np.ascontiguousarray(S[..., : config.n_frames(n_samples)])
    return librosa.stft(
        y,
        n_fft=config.n_fft,
        hop_length=config.hop_length,
        win_length=config.win_length,
        window=_window(config),
        center=True,
        pad_mode="constant",
    )


def istft(S: np.ndarray, config: STFTConfig, *, length: int) -> np.ndarray:
    """Inverse STFT by weighted overlap-add, trimmed or padded to exactly ``length`` samples.

    Parameters
    ----------
    S : np.ndarray, shape (..., n_freq, n_frames), complex
    config : STFTConfig
    length : int
        Output length in samples (the input signal's length).

    Returns
    -------
    np.ndarray, shape (..., length), real
    """
    import librosa

    return librosa.istft(
        S,
        hop_length=config.hop_length,
        win_length=config.win_length,
        n_fft=config.n_fft,
        window=_window(config),
        center=True,
        length=length,
    )
