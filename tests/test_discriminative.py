"""Discriminative training (issue 12): reconstruction bases learned on synthetic mixtures."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from nmfsep.engine import SeparationPlan
from nmfsep.errors import ModelError, ParameterError
from nmfsep.frames import unstack_frames
from nmfsep.model import NMFModel, load_model
from nmfsep.options import TrainOptions
from nmfsep.separation import separate
from nmfsep.training import _unstack_adjoint, train_model

SR = 8000


def _tones(rng: np.random.Generator, seconds: float) -> np.ndarray:
    """Harmonic notes (random pitch, 3 partials) switched on and off: a voice-like source."""
    n, note = int(seconds * SR), SR // 5
    t = np.arange(note) / SR
    y = np.zeros(n)
    for start in range(0, n - note + 1, note):
        if rng.random() < 0.2:
            continue
        f0 = rng.uniform(150.0, 400.0)
        env = np.hanning(note)
        y[start : start + note] = env * sum(np.sin(2 * np.pi * h * f0 * t) / h for h in (1, 2, 3))
    return (0.1 * y).astype(np.float32)


def _noise(rng: np.random.Generator, seconds: float) -> np.ndarray:
    """Low-passed noise whose band overlaps the tones'."""
    x = rng.standard_normal(int(seconds * SR))
    k = np.ones(4) / 4
    return (0.05 * np.convolve(x, k, mode="same")).astype(np.float32)


def _sdr(ref: np.ndarray, est: np.ndarray) -> float:
    return float(10 * np.log10(np.sum(ref**2) / np.sum((ref - est) ** 2)))


@pytest.fixture(scope="module")
def models() -> tuple[NMFModel, NMFModel]:
    rng = np.random.default_rng(1)
    sources = {"tones": [_tones(rng, 12.0)[None]], "noise": [_noise(rng, 12.0)[None]]}
    opts = dict(sr=SR, n_fft=256, n_components=6, context=3, max_iter=60)
    plain = train_model(sources, **opts)
    disc = train_model(sources, **opts, discriminative=True)
    return plain, disc


def test_discriminative_bases_improve_sdr(models: tuple[NMFModel, NMFModel]) -> None:
    plain, disc = models
    assert disc.discriminative and not plain.discriminative
    assert disc.metadata["discriminative"] is True
    # the analysis bases are the plain ones (same training, same seed)
    for name in plain.bases:
        np.testing.assert_array_equal(plain.bases[name], disc.bases[name])
    rng = np.random.default_rng(7)
    s, v = _tones(rng, 4.0), _noise(rng, 4.0)
    mix = (s + v)[None]
    est_plain = separate(mix, SR, plain).sources["tones"][0]
    est_disc = separate(mix, SR, disc).sources["tones"][0]
    assert _sdr(s, est_disc) > _sdr(s, est_plain) + 0.2


def test_model_with_recon_saves_and_loads(
    tmp_path: Path, models: tuple[NMFModel, NMFModel]
) -> None:
    _, disc = models
    path = disc.save(tmp_path / "d.npz")
    back = load_model(path)
    assert back.recon is not None and disc.recon is not None
    for name in disc.bases:
        np.testing.assert_array_equal(back.recon[name], disc.recon[name])
        np.testing.assert_array_equal(back.bases[name], disc.bases[name])
    assert back.metadata["discriminative"] is True


def test_old_models_load(tmp_path: Path, models: tuple[NMFModel, NMFModel]) -> None:
    plain, _ = models
    back = load_model(plain.save(tmp_path / "p.npz"))
    assert back.recon is None and not back.discriminative
    with np.load(tmp_path / "p.npz") as npz:
        assert sorted(npz.files) == ["W_0", "W_1", "metadata"]  # no new entries


def test_recon_shapes_checked(models: tuple[NMFModel, NMFModel]) -> None:
    plain, _ = models
    bad = {n: W[:, :-1] for n, W in plain.bases.items()}
    with pytest.raises(ModelError):
        NMFModel(bases=plain.bases, sr=SR, stft=plain.stft, context=plain.context, recon=bad)


def test_separation_cost_unchanged(models: tuple[NMFModel, NMFModel]) -> None:
    plain, disc = models
    rng = np.random.default_rng(3)
    mix = (_tones(rng, 2.0) + _noise(rng, 2.0))[None]
    a, b = separate(mix, SR, plain), separate(mix, SR, disc)
    assert a.n_iter == b.n_iter
    pa, pb = SeparationPlan.create(plain, sr=SR), SeparationPlan.create(disc, sr=SR)
    assert pa.W_recon is None and pb.W_recon is not None
    assert pb.W_recon.shape == pb.W.shape
    np.testing.assert_array_equal(pa.W, pb.W)  # the same analysis bases infer H


def test_unstack_adjoint() -> None:
    rng = np.random.default_rng(0)
    X, A = rng.random((3 * 5, 9)), rng.random((5, 9))
    lhs = float(np.sum(unstack_frames(X, 3) * A))
    rhs = float(np.sum(X * _unstack_adjoint(A, 3)))
    assert lhs == pytest.approx(rhs)


def test_needs_two_sources() -> None:
    with pytest.raises(ParameterError):
        train_model(
            {"x": [_noise(np.random.default_rng(0), 2.0)[None]]},
            sr=SR,
            n_fft=256,
            discriminative=True,
        )
    with pytest.raises(ParameterError):
        TrainOptions(discriminative=1)  # type: ignore[arg-type]
