"""Short-time Fourier transform: settings, and the one STFT / overlap-add implementation.

The whole-signal :func:`stft` / :func:`istft` and the block primitives of the separation engine
(:func:`frames_stft`, :func:`frames_istft`, :func:`window_sum`) are the same code, with
librosa's conventions (centred frames, zero padding, periodic windows, normalisation by the
summed squared window), in numpy / scipy.fft so that separating never imports librosa.

Orientation is audio's: a spectrogram has shape ``(..., n_freq, n_frames)`` with
``n_freq = n_fft // 2 + 1``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from nmfsep.errors import ParameterError
from nmfsep.limits import MAX_FRAMES_PER_WINDOW

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
        least = max(1, win // MAX_FRAMES_PER_WINDOW)
        if hop is None or not least <= hop <= win:
            raise ParameterError(
                f"hop_length must be in [{least}, win_length={win}] (at most "
                f"{MAX_FRAMES_PER_WINDOW} frames per window), got {self.hop_length!r}"
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


#: Cosine-sum coefficients of the windows :class:`STFTConfig` accepts.
_COSINE_WINDOWS = {"hann": (0.5, 0.5), "hamming": (0.54, 0.46), "blackman": (0.42, 0.5, 0.08)}


def windows(config: STFTConfig) -> tuple[np.ndarray, np.ndarray]:
    """Analysis/synthesis window centred in ``n_fft`` samples (float32), and its square.

    The periodic windows of ``scipy.signal.get_window(name, win_length, fftbins=True)`` (what
    librosa uses), computed here so that a separation imports neither scipy.signal nor librosa
    (seconds of start-up per process).
    """
    assert config.win_length is not None
    M = config.win_length
    name = "hann" if config.window == "sqrt_hann" else config.window
    fac = np.linspace(-np.pi, np.pi, M + 1)[:M]
    win = np.zeros(M)
    for k, a in enumerate(_COSINE_WINDOWS[name]):
        win += a * np.cos(k * fac)
    if config.window == "sqrt_hann":
        win = np.sqrt(np.maximum(win, 0.0))
    full = np.zeros(config.n_fft)
    lpad = (config.n_fft - M) // 2
    full[lpad : lpad + M] = win
    return full.astype(np.float32), (full**2).astype(np.float32)


#: Samples an FFT call must cover before scipy.fft is worth importing (0.3 s of start-up):
#: scipy's forward real FFT is 2-4x faster than numpy's in float32, the inverse the same.
_SCIPY_FFT_SAMPLES = 1 << 24


def _fft(n_samples: int) -> Any:
    """The FFT module for a transform of ``n_samples``: scipy.fft for big ones, numpy.fft for
    the short files where its import would cost the most. The choice depends on the size only
    (never on what happens to be imported), so results are reproducible."""
    if n_samples >= _SCIPY_FFT_SAMPLES:
        import scipy.fft

        return scipy.fft
    return np.fft


def stft_rows(x: np.ndarray, config: STFTConfig, window: np.ndarray) -> np.ndarray:
    """STFT of samples whose frames start every ``hop_length`` samples, with no padding, frames
    as rows: shape (n_channels, n_frames, n_freq) — the FFT's own layout, no transpose.

    Parameters
    ----------
    x : np.ndarray, shape (n_channels, (n_frames - 1) * hop_length + n_fft), float32
    config : STFTConfig
    window : np.ndarray, shape (n_fft,)
        From :func:`windows`.

    Returns
    -------
    np.ndarray, shape (n_channels, n_frames, n_freq), complex64 (complex128 for float64)
    """
    from numpy.lib.stride_tricks import sliding_window_view

    frames = sliding_window_view(x, config.n_fft, axis=-1)[:, :: config.hop_length]
    out = _fft(frames.size).rfft(frames * window, axis=-1)
    return out.astype(np.complex128 if x.dtype == np.float64 else np.complex64, copy=False)


def istft_rows(Y: np.ndarray, config: STFTConfig, window: np.ndarray) -> np.ndarray:
    """Windowed inverse FFT of frames stored as rows (n_channels, n_frames, n_freq),
    overlap-added (not yet normalised: divide by :func:`window_sum` of the same frames).

    Returns
    -------
    np.ndarray, shape (n_channels, (n_frames - 1) * hop_length + n_fft), float32 (float64 for
    complex128)
    """
    frames = _fft(Y.size * 2).irfft(Y, n=config.n_fft, axis=-1)
    frames = frames.astype(np.float64 if Y.dtype == np.complex128 else np.float32, copy=False)
    frames *= window
    return _overlap_add_rows(frames, config.hop_length)


def frames_stft(x: np.ndarray, config: STFTConfig, window: np.ndarray) -> np.ndarray:
    """As :func:`stft_rows`, in the spectrogram layout (n_channels, n_freq, n_frames)."""
    return np.ascontiguousarray(stft_rows(x, config, window).transpose(0, 2, 1))


def frames_istft(S: np.ndarray, config: STFTConfig, window: np.ndarray) -> np.ndarray:
    """As :func:`istft_rows`, for the spectrogram layout (n_channels, n_freq, n_frames)."""
    # frames contiguous along frequency: pocketfft is 1.7x slower on strided input
    return istft_rows(np.ascontiguousarray(S.transpose(0, 2, 1)), config, window)


def window_sum(window_sq: np.ndarray, n_frames: int, hop_length: int) -> np.ndarray:
    """Overlap-added squared window of ``n_frames`` frames: the inverse STFT's normaliser."""
    return overlap_add(np.repeat(window_sq[:, None], n_frames, axis=1), hop_length)


def overlap_add(frames: np.ndarray, hop: int) -> np.ndarray:
    """Overlap-add ``frames`` (..., n_fft, n_frames) at ``hop``: (..., (n_frames-1)*hop + n_fft)."""
    return _overlap_add_rows(np.swapaxes(frames, -1, -2), hop)


def _overlap_add_rows(frames: np.ndarray, hop: int) -> np.ndarray:
    """Overlap-add frames stored as rows, (..., n_frames, n_fft)."""
    *lead, n, n_fft = frames.shape
    n_chunks = -(-n_fft // hop)
    acc = np.zeros((*lead, n + n_chunks, hop), dtype=frames.dtype)
    for k in range(n_chunks):  # the k-th hop-long piece of every frame, in one slice each
        t0, t1 = k * hop, min((k + 1) * hop, n_fft)
        acc[..., k : k + n, : t1 - t0] += frames[..., :, t0:t1]
    flat = acc.reshape(*lead, -1)
    return flat[..., : (n - 1) * hop + n_fft]


def normalise(y: np.ndarray, wss: np.ndarray) -> np.ndarray:
    """Divide overlap-added samples by the window sum where it is not ~0 (as librosa does)."""
    tiny = np.finfo(np.float32).tiny
    scale = np.divide(1.0, wss, out=np.ones_like(wss), where=wss > tiny)
    return y * scale


def stft(y: np.ndarray, config: STFTConfig) -> np.ndarray:
    """Complex STFT of ``y`` with centred frames (zeros outside the signal), as
    ``librosa.stft(..., center=True, pad_mode="constant")``.

    Parameters
    ----------
    y : np.ndarray, shape (..., n_samples), real
        Signal(s).
    config : STFTConfig

    Returns
    -------
    np.ndarray, shape (..., n_freq, n_frames), complex64 (complex128 for float64 input)
    """
    y = np.asarray(y)
    dtype = np.float64 if y.dtype == np.float64 else np.float32
    lead = y.shape[:-1]
    x = y.reshape(int(np.prod(lead)), y.shape[-1]).astype(dtype, copy=False)
    n_frames = config.n_frames(x.shape[-1])
    pad = config.n_fft // 2
    total = (n_frames - 1) * config.hop_length + config.n_fft
    padded = np.zeros((x.shape[0], total), dtype)
    m = min(x.shape[-1], total - pad)
    padded[:, pad : pad + m] = x[:, :m]
    S = frames_stft(padded, config, windows(config)[0])
    return S.reshape(*lead, config.n_freq, n_frames)


def istft(S: np.ndarray, config: STFTConfig, *, length: int) -> np.ndarray:
    """Inverse STFT by weighted overlap-add, exactly ``length`` samples (inverse of :func:`stft`).

    Parameters
    ----------
    S : np.ndarray, shape (..., n_freq, n_frames), complex
    config : STFTConfig
    length : int
        Output length in samples (the input signal's length).

    Returns
    -------
    np.ndarray, shape (..., length), float32 (float64 for complex128 input)
    """
    lead = S.shape[:-2]
    X = S.reshape(int(np.prod(lead)), *S.shape[-2:])
    n_frames = X.shape[-1]
    window, window_sq = windows(config)
    y = normalise(
        frames_istft(X, config, window), window_sum(window_sq, n_frames, config.hop_length)
    )
    pad = config.n_fft // 2
    out = np.zeros((X.shape[0], length), y.dtype)
    m = max(0, min(length, y.shape[-1] - pad))
    out[:, :m] = y[:, pad : pad + m]
    return out.reshape(*lead, length)
