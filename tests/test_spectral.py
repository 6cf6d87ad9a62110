"""nmfsep.spectral: STFT settings and the stft/istft pair."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from nmfsep.errors import ParameterError
from nmfsep.spectral import STFTConfig, istft, stft


def test_defaults_and_derived_values() -> None:
    c = STFTConfig()
    assert (c.n_fft, c.hop_length, c.win_length, c.window) == (1024, 256, 1024, "hann")
    assert c.n_freq == 513
    assert c.n_frames(0) == 1 and c.n_frames(1024) == 5
    f = c.frequencies(16000)
    assert f.shape == (513,) and f[0] == 0.0 and f[-1] == 8000.0


def test_dict_round_trip_and_integral_floats() -> None:
    c = STFTConfig(n_fft=512, hop_length=128, win_length=400, window="hamming")
    d = c.to_dict()
    assert d == {"n_fft": 512, "hop_length": 128, "win_length": 400, "window": "hamming"}
    assert STFTConfig.from_dict(d) == c
    c2 = STFTConfig(n_fft=512.0, hop_length=np.int64(128))  # type: ignore[arg-type]
    assert type(c2.n_fft) is int and type(c2.hop_length) is int
    assert c2 == STFTConfig(n_fft=512, hop_length=128)


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(n_fft=8),
        dict(n_fft=1000.5),
        dict(n_fft="1024"),
        dict(n_fft="abc"),
        dict(n_fft=None),
        dict(n_fft=True),
        dict(n_fft=float("nan")),
        dict(n_fft=float("inf")),
        dict(win_length=2048),
        dict(win_length=0),
        dict(hop_length=0),
        dict(hop_length=2000),
        dict(hop_length=[1]),
        # more than 32 frames per window: a spectrogram 1024x its audio (hop 1) was possible
        dict(hop_length=1),
        dict(n_fft=2048, hop_length=63),
        dict(window="kaiser"),
        dict(window=["hann"]),
    ],
)
def test_invalid_settings_raise_parameter_error(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ParameterError):
        STFTConfig(**kwargs)


def test_the_densest_hop_allowed() -> None:
    assert STFTConfig(n_fft=2048, hop_length=64).hop_length == 64
    assert STFTConfig(n_fft=16, hop_length=1).hop_length == 1


def test_from_dict_refuses_unknown_keys_and_non_mappings() -> None:
    with pytest.raises(ParameterError, match="bad STFT settings"):
        STFTConfig.from_dict({"n_fft": 512, "center": True})
    with pytest.raises(ParameterError, match="bad STFT settings"):
        STFTConfig.from_dict([512])  # type: ignore[arg-type]


@pytest.mark.parametrize("window", ["hann", "hamming", "blackman", "sqrt_hann"])
@pytest.mark.parametrize("length", [1, 100, 1000, 4097])
def test_stft_istft_perfect_reconstruction(window: str, length: int) -> None:
    c = STFTConfig(n_fft=256, hop_length=64, window=window)
    y = np.random.default_rng(0).standard_normal((2, length)).astype(np.float32)
    S = stft(y, c)
    assert S.shape == (2, c.n_freq, c.n_frames(length))
    assert S.dtype == np.complex64
    out = istft(S, c, length=length)
    assert out.shape == (2, length) and out.dtype == np.float32
    np.testing.assert_allclose(out, y, atol=1e-4)


def test_istft_pads_or_trims_to_length() -> None:
    c = STFTConfig(n_fft=64, hop_length=16)
    y = np.ones(300, np.float64)
    S = stft(y, c)
    assert S.dtype == np.complex128
    assert istft(S, c, length=250).shape == (250,)
    assert istft(S, c, length=400).shape == (400,)


def test_win_length_shorter_than_n_fft() -> None:
    c = STFTConfig(n_fft=512, hop_length=100, win_length=400)
    y = np.random.default_rng(1).standard_normal(5000).astype(np.float32)
    np.testing.assert_allclose(istft(stft(y, c), c, length=5000), y, atol=1e-4)


@pytest.mark.parametrize("length", [0, 1, 63, 255])
def test_signals_shorter_than_one_frame_give_the_same_frames_without_warning(
    length: int,
) -> None:
    c = STFTConfig(n_fft=256, hop_length=64)
    y = np.random.default_rng(2).standard_normal((2, length)).astype(np.float32)
    S = stft(y, c)  # pytest -W error: any librosa warning would fail here
    assert S.shape == (2, c.n_freq, c.n_frames(length))
    if length:
        long = np.concatenate([y, np.zeros((2, 1000), np.float32)], axis=1)
        np.testing.assert_allclose(S, stft(long, c)[..., : S.shape[-1]], atol=1e-5)
        np.testing.assert_allclose(istft(S, c, length=length), y, atol=1e-4)
