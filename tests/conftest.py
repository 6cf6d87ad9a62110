"""Shared test fixtures: short synthetic signals and files (no dependence on ../shared).

Fixtures
--------
``voice_signal(sr=16000, seconds=1.0, seed=0, channels=1)`` -> float32 (channels, n)
    harmonic "voice-like" tone sequence: notes with a few harmonics, vibrato and gaps.
``noise_signal(sr=16000, seconds=1.0, seed=0, channels=1, color="pink")`` -> float32 (channels, n)
``write_wav(name, y, sr, subtype="PCM_16", format=None)`` -> Path
    writes ``y`` (channels, n) or (n,) with soundfile under ``tmp_path`` (sub-directories allowed).
``voice_wav`` / ``noise_wav`` / ``mix_wav``: 1 s mono 16 kHz PCM_16 files (voice + noise at 0 dB).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest


def make_voice_signal(
    sr: int = 16000, seconds: float = 1.0, seed: int = 0, channels: int = 1
) -> np.ndarray:
    """Harmonic tone sequence (speech-like: 100-250 Hz f0, 6 harmonics, vibrato, short gaps)."""
    rng = np.random.default_rng(seed)
    n = round(sr * seconds)
    out = np.zeros((channels, n), dtype=np.float64)
    note = max(1, int(0.2 * sr))
    t = np.arange(note) / sr
    env = np.hanning(note)
    for start in range(0, n, note):
        length = min(note, n - start)
        f0 = rng.uniform(100.0, 250.0)
        phase_f0 = 2 * np.pi * (f0 * t + 2.0 * np.sin(2 * np.pi * 5.0 * t) / (2 * np.pi * 5.0))
        tone = sum(
            (0.6 / h) * np.sin(h * phase_f0 + rng.uniform(0, 2 * np.pi))
            for h in range(1, 7)
            if h * f0 < sr / 2
        )
        seg = (env * tone)[:length]
        for c in range(channels):
            out[c, start : start + length] = seg * (1.0 - 0.2 * c / max(1, channels))
    gap = max(1, note // 4)  # silences between "syllables"
    for start in range(note - gap, n, 2 * note):
        out[:, start : start + gap] = 0.0
    return (0.5 * out / max(1e-9, np.abs(out).max())).astype(np.float32)


def make_noise_signal(
    sr: int = 16000, seconds: float = 1.0, seed: int = 0, channels: int = 1, color: str = "pink"
) -> np.ndarray:
    """White or pink (1/f power) Gaussian noise, peak 0.3."""
    rng = np.random.default_rng(seed)
    n = round(sr * seconds)
    white = rng.standard_normal((channels, max(n, 1)))
    if color == "pink":
        spec = np.fft.rfft(white, axis=-1)
        f = np.arange(spec.shape[-1], dtype=np.float64)
        f[0] = 1.0
        white = np.fft.irfft(spec / np.sqrt(f), n=max(n, 1), axis=-1)
    white = white[:, :n]
    peak = np.abs(white).max() if white.size else 1.0
    return (0.3 * white / max(peak, 1e-9)).astype(np.float32)


@pytest.fixture
def voice_signal() -> Callable[..., np.ndarray]:
    return make_voice_signal


@pytest.fixture
def noise_signal() -> Callable[..., np.ndarray]:
    return make_noise_signal


@pytest.fixture
def write_wav(tmp_path: Path) -> Callable[..., Path]:
    """Factory writing a test file with soundfile directly (independent of nmfsep.audio)."""
    import soundfile as sf

    def _write(
        name: str,
        y: np.ndarray,
        sr: int,
        subtype: str | None = "PCM_16",
        format: str | None = None,
    ) -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        data = np.asarray(y)
        data = data.T if data.ndim == 2 else data
        sf.write(path, data, sr, subtype=subtype, format=format)
        return path

    return _write


@pytest.fixture
def voice_wav(write_wav: Callable[..., Path]) -> Path:
    return write_wav("voice.wav", make_voice_signal(), 16000)


@pytest.fixture
def noise_wav(write_wav: Callable[..., Path]) -> Path:
    return write_wav("noise.wav", make_noise_signal(), 16000)


@pytest.fixture
def mix_wav(write_wav: Callable[..., Path]) -> Path:
    return write_wav("mix.wav", make_voice_signal() + make_noise_signal(), 16000)
