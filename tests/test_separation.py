"""Library-level tests of the pipelines: frame stacking, rate mapping, training, separation."""

from __future__ import annotations

import numpy as np
import pytest

from nmfsep.engine import default_stft, map_bases, stft_for_rate
from nmfsep.errors import ParameterError
from nmfsep.frames import stack_frames, unstack_frames
from nmfsep.model import NMFModel, load_model
from nmfsep.separation import separate
from nmfsep.spectral import STFTConfig
from nmfsep.training import train_model

SR = 8000


def _voice(seconds: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    f0 = 140 + 30 * np.sin(2 * np.pi * 0.5 * t + rng.uniform(0, 6))
    phase = 2 * np.pi * np.cumsum(f0) / SR
    y = sum(np.sin(h * phase) / h for h in range(1, 6))
    return (0.1 * y * (0.3 + np.sin(2 * np.pi * 2.5 * t) ** 2)).astype(np.float32)


def _hiss(seconds: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    n = rng.standard_normal(int(seconds * SR))
    spectrum = np.fft.rfft(n)
    spectrum[: len(spectrum) // 2] = 0  # above 2 kHz only
    return (0.05 * np.fft.irfft(spectrum, n=len(n))).astype(np.float32)


def _sdr(ref: np.ndarray, est: np.ndarray) -> float:
    return float(10 * np.log10(np.sum(ref**2) / np.sum((ref - est) ** 2)))


@pytest.fixture(scope="module")
def model() -> NMFModel:
    return train_model(
        {"voice": [_voice(3.0, 1)[np.newaxis]], "hiss": [_hiss(3.0, 2)[np.newaxis]]},
        sr=SR,
        n_components=6,
        stft_config=STFTConfig(n_fft=256, hop_length=64),
        context=3,
        max_iter=60,
    )


@pytest.mark.parametrize("context", [1, 3, 5])
def test_stack_then_unstack_gives_back_the_frames(context: int) -> None:
    V = np.random.default_rng(0).random((7, 11)).astype(np.float32)
    S = stack_frames(V, context)
    assert S.shape == (7 * context, 11)
    half = context // 2
    # Column t holds frames t-half .. t+half, edges repeated.
    for j in range(context):
        np.testing.assert_array_equal(S[7 * j : 7 * (j + 1), 5], V[:, 5 + j - half])
    np.testing.assert_array_equal(S[:7, 0], V[:, 0])
    np.testing.assert_allclose(unstack_frames(S, context), V, rtol=1e-6)


def test_unstack_averages_the_estimates_of_each_frame() -> None:
    # Column c's block j estimates frame c + j - 1: give every block a different constant.
    T = 5
    S = np.concatenate([np.full((1, T), 1.0), np.full((1, T), 2.0), np.full((1, T), 6.0)])
    out = unstack_frames(S, 3)[0]
    # Frame 0: block 0 of column 1 and block 1 of column 0 -> mean(1, 2); a middle frame gets
    # all three blocks -> mean(1, 2, 6); the last frame blocks 1 and 2 -> mean(2, 6).
    assert out[0] == pytest.approx(1.5)
    assert out[2] == pytest.approx(3.0)
    assert out[-1] == pytest.approx(4.0)


def test_map_bases_identity_and_other_rate() -> None:
    config = STFTConfig(n_fft=256, hop_length=64)
    W = np.random.default_rng(1).random((3 * config.n_freq, 4)).astype(np.float32)
    same, n = map_bases(W, SR, config, SR, config, context=3)
    assert same is W and n == config.n_freq
    other = stft_for_rate(config, SR, 2 * SR)
    assert other.n_fft == 512 and other.hop_length == 128
    mapped, n = map_bases(W, SR, config, 2 * SR, other, context=3)
    # Only the bins up to the model's Nyquist (4 kHz) are modelled: half of the new grid.
    assert n == config.n_freq and mapped.shape == (3 * n, 4)
    np.testing.assert_allclose(mapped, W, rtol=1e-5)


def test_default_stft_is_about_128_ms() -> None:
    assert default_stft(16000) == STFTConfig(n_fft=2048, hop_length=512)
    assert default_stft(44100).n_fft == 4096
    assert default_stft(8000).n_fft == 1024


def test_model_keeps_its_context_through_a_file(model: NMFModel, tmp_path) -> None:
    path = tmp_path / "m.npz"
    model.save(path)
    loaded = load_model(path)
    assert loaded.context == 3
    assert loaded.W.shape == (3 * 129, 12)
    np.testing.assert_array_equal(loaded.W, model.W)


@pytest.mark.parametrize("rate", [SR, 2 * SR, SR // 2])
def test_separation_sums_to_mixture_and_helps(model: NMFModel, rate: int) -> None:
    import librosa

    voice, hiss = _voice(2.0, 3), _hiss(2.0, 4)
    mix = voice + hiss
    if rate != SR:
        voice = librosa.resample(voice, orig_sr=SR, target_sr=rate)
        mix = librosa.resample(mix, orig_sr=SR, target_sr=rate)
    result = separate(mix[np.newaxis], rate, model)
    est = result.sources["voice"][0]
    assert est.shape == mix.shape and est.dtype == np.float32
    total = result.sources["voice"] + result.sources["hiss"]
    np.testing.assert_allclose(total[0], mix, atol=1e-4)
    assert result.settings["context"] == 3
    if rate >= SR:  # at half the rate the hiss band is gone: nothing to separate there
        assert _sdr(voice, est) > _sdr(voice, mix) + 6.0


def test_train_refuses_bad_context() -> None:
    y = _voice(1.0, 0)[np.newaxis]
    for bad in (0, 2, -1):
        with pytest.raises(ParameterError, match="context"):
            train_model({"a": [y], "b": [y]}, sr=SR, context=bad)


def test_same_seed_same_result(model: NMFModel) -> None:
    mix = (_voice(1.0, 5) + _hiss(1.0, 6))[np.newaxis]
    a = separate(mix, SR, model, free_components=2, random_state=3)
    b = separate(mix, SR, model, free_components=2, random_state=3)
    for name in a.sources:
        np.testing.assert_array_equal(a.sources[name], b.sources[name])


def test_training_uses_a_bounded_sample_of_audible_frames() -> None:
    voice = np.concatenate([_voice(2.0, 7), np.zeros(SR, np.float32)])[np.newaxis]
    model = train_model(
        {"voice": [voice, voice], "hiss": [_hiss(2.0, 8)[np.newaxis]]},
        sr=SR,
        n_components=4,
        stft_config=STFTConfig(n_fft=256, hop_length=64),
        context=3,
        max_iter=20,
        max_frames=60,
    )
    stats = model.metadata["training"]["sources"]["voice"]
    assert stats["frames_total"] == 2 * (1 + voice.shape[1] // 64)
    # The trailing second of silence is not audible; the sample is bounded by max_frames.
    assert stats["frames_audible"] < stats["frames_total"]
    assert stats["frames_used"] == 60
    assert model.bases["voice"].shape == (3 * 129, 4)


@pytest.mark.parametrize(
    ("sr", "expected"),
    [(8000, 20_000), (16000, 20_000), (44100, 13100), (48000, 6552), (96000, 3276), (192000, 2000)],
)
def test_default_frame_budget_is_bounded_in_bytes(sr: int, expected: int) -> None:
    from nmfsep import defaults
    from nmfsep.options import TrainOptions
    from nmfsep.training import frame_budget, train_config

    options = TrainOptions()
    config = train_config(sr, options)
    frames = frame_budget(config, options)
    assert frames == expected
    frame_bytes = 4 * (config.n_fft // 2 + 1) * options.context
    assert frames * frame_bytes <= defaults.TRAIN_MEMORY or frames == defaults.TRAIN_FRAMES_MIN
    # an explicit count is kept as it is
    assert frame_budget(config, TrainOptions(max_frames=123)) == 123


def test_training_frames_follow_the_byte_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    from nmfsep import defaults

    # room for 100 stacked frames of 3 x 129 bins: a 3 s voice (375 frames) trains on 100
    monkeypatch.setattr(defaults, "TRAIN_MEMORY", 100 * 4 * 3 * 129)
    monkeypatch.setattr(defaults, "TRAIN_FRAMES_MIN", 10)
    model = train_model(
        {"voice": [_voice(3.0, 7)[np.newaxis]], "hiss": [_hiss(1.0, 8)[np.newaxis]]},
        sr=SR,
        n_components=4,
        stft_config=STFTConfig(n_fft=256, hop_length=64),
        context=3,
        max_iter=5,
    )
    stats = model.metadata["training"]["sources"]["voice"]
    assert stats["frames_audible"] > 100
    assert 99 <= stats["frames_used"] <= 101


def test_stack_frames_of_selected_columns() -> None:
    V = np.random.default_rng(2).random((5, 9)).astype(np.float32)
    cols = np.array([0, 4, 8])
    np.testing.assert_array_equal(stack_frames(V, 3, cols), stack_frames(V, 3)[:, cols])


def _exemplar_model(n: int, seconds: float = 2.0) -> NMFModel:
    return train_model(
        {"voice": [_voice(seconds, 1)[np.newaxis]], "hiss": [_hiss(seconds, 2)[np.newaxis]]},
        sr=SR,
        n_components=4,
        stft_config=STFTConfig(n_fft=256, hop_length=64),
        context=3,
        max_iter=30,
        exemplars=n,
        seed=4,
    )


def test_exemplars_are_unit_norm_training_patches_beside_the_same_learned_bases() -> None:
    from nmfsep.spectral import stft

    plain, with_ex = _exemplar_model(0), _exemplar_model(10)
    for name, y in (("voice", _voice(2.0, 1)), ("hiss", _hiss(2.0, 2))):
        W = with_ex.bases[name]
        assert W.shape == (3 * 129, 4 + 10)
        # the learned bases do not depend on the exemplars (their own random stream)
        np.testing.assert_array_equal(W[:, :4], plain.bases[name])
        ex = W[:, 4:]
        np.testing.assert_allclose(np.linalg.norm(ex, axis=0), 1.0, rtol=1e-5)
        # each exemplar is one of the clip's own patches (up to scale), and no two are the same
        S = np.abs(stft(y[np.newaxis], STFTConfig(n_fft=256, hop_length=64)))[0]
        P = stack_frames(S.astype(np.float32), 3)
        P = P / np.maximum(np.linalg.norm(P, axis=0), 1e-30)
        best = (P.T @ ex).max(axis=0)
        np.testing.assert_allclose(best, 1.0, atol=1e-4)
        assert len({int(np.argmax(P.T @ ex[:, k])) for k in range(10)}) == 10
        stats = with_ex.metadata["training"]["sources"][name]
        assert (
            stats["exemplars"] == 10
            and plain.metadata["training"]["sources"][name]["exemplars"] == 0
        )
    assert with_ex.metadata["training"]["exemplars"] == 10
    assert "exemplars" not in plain.metadata["training"]


def test_exemplars_are_bounded_by_the_training_patches_and_help_separation() -> None:
    model = _exemplar_model(1000, seconds=1.0)  # more than the clips have
    used = model.metadata["training"]["sources"]["voice"]["frames_used"]
    assert model.bases["voice"].shape[1] == 4 + used
    voice, hiss = _voice(2.0, 3), _hiss(2.0, 4)
    mix = voice + hiss
    result = separate(mix[np.newaxis], SR, model)
    est = result.sources["voice"][0]
    np.testing.assert_allclose(est + result.sources["hiss"][0], mix, atol=1e-4)
    assert np.isfinite(est).all()
    assert _sdr(voice, est) > _sdr(voice, mix) + 6.0


@pytest.mark.parametrize("bad", [-1, 2.5, "ten", 2000])
def test_exemplars_refuses_bad_counts(bad: object) -> None:
    y = _voice(1.0, 0)[np.newaxis]
    with pytest.raises(ParameterError, match="exemplars"):
        train_model({"a": [y], "b": [y]}, sr=SR, exemplars=bad)


def test_model_by_path_or_default_and_one_array_per_source(model: NMFModel, tmp_path) -> None:
    """The array API takes a model as a file path or "default" (as ``separate -m`` does), and
    one array per source in place of a list of examples; a wrong type is a ParameterError."""
    mix = (_voice(1.0, 5) + _hiss(1.0, 6))[np.newaxis]
    path = tmp_path / "m.npz"
    model.save(path)
    a = separate(mix, SR, model)
    for given in (path, str(path)):
        b = separate(mix, SR, given)
        np.testing.assert_array_equal(a.sources["voice"], b.sources["voice"])
    assert list(separate(mix, SR, "default").sources) == ["speech", "noise"]
    with pytest.raises(ParameterError, match="model must be an NMFModel"):
        separate(mix, SR, 3)  # type: ignore[arg-type]
    one = {"voice": _voice(1.0, 1)[np.newaxis], "hiss": _hiss(1.0, 2)[np.newaxis]}
    listed = {k: [v] for k, v in one.items()}
    kw = dict(sr=SR, n_components=4, stft_config=STFTConfig(n_fft=256, hop_length=64))
    m1, m2 = train_model(one, **kw), train_model(listed, **kw)  # type: ignore[arg-type]
    for k in one:
        np.testing.assert_array_equal(m1.bases[k], m2.bases[k])


def test_samples_by_channels_layout_is_named() -> None:
    y = np.zeros((SR, 2), np.float32)
    with pytest.raises(ParameterError, match=r"samples by channels.*y\.T"):
        separate(y, SR)


def test_the_library_refuses_absurd_rates_before_any_work() -> None:
    # the CLI capped --sr, the library did not: sr=1e8 made 4000 samples take all of 24 GB
    from nmfsep.separation import cluster_separate

    x = (0.1 * np.random.default_rng(0).standard_normal(4000)).astype(np.float32)
    for call in (
        lambda: separate(x, 10**8),
        lambda: cluster_separate(x, 10**8),
        lambda: train_model({"a": [x], "b": [x]}, sr=10**9),
    ):
        with pytest.raises(ParameterError, match=r"sr must be an integer in \[1, 768000\]"):
            call()
