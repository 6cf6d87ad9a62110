"""Synthetic test signals shared by the engine and streaming tests (8 kHz by default)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from nmfsep.model import NMFModel

SR = 8000


def tones(seconds: float, sr: int = SR, seed: int = 0) -> np.ndarray:
    """Harmonic tones below 1.5 kHz with a gliding pitch and a syllable-like envelope."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    f0 = 150 + 40 * np.sin(2 * np.pi * 0.7 * t + rng.uniform(0, 6))
    phase = 2 * np.pi * np.cumsum(f0) / sr
    y = sum(np.sin(h * phase) / h for h in range(1, 6))
    env = 0.5 + 0.5 * np.sin(2 * np.pi * 3 * t + rng.uniform(0, 6)) ** 2
    return (0.1 * y * env).astype(np.float32)


def hiss(seconds: float, sr: int = SR, seed: int = 1) -> np.ndarray:
    """White noise high-passed above 2 kHz."""
    rng = np.random.default_rng(seed)
    n = rng.standard_normal(int(seconds * sr))
    spec = np.fft.rfft(n)
    spec[: int(len(spec) * 2000 / (sr / 2))] = 0
    return (0.05 * np.fft.irfft(spec, n=len(n))).astype(np.float32)


def tone_hiss_model(
    *, context: int = 3, names: tuple[str, str] = ("voice", "hiss"), seconds: float = 3.0
) -> NMFModel:
    """A small trained model of :func:`tones` (first source) and :func:`hiss` (second), 8 kHz,
    6 bases each, n_fft 256: the shared fixture of the engine-level tests (a plain model: no
    refiner, whatever the source names)."""
    from nmfsep.spectral import STFTConfig
    from nmfsep.training import train_model

    return train_model(
        {names[0]: [tones(seconds, seed=5)], names[1]: [hiss(seconds, seed=6)]},
        sr=SR,
        n_components=6,
        context=context,
        stft_config=STFTConfig(n_fft=256, hop_length=64),
        max_iter=40,
        refiner=None,
    )
