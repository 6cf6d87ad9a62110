"""The one engine: plan, block runner and chunk API give the same outputs on every path."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from _signals import SR, hiss, tone_hiss_model, tones

from nmfsep import defaults
from nmfsep.engine import SeparationPlan, Separator, safe_gain
from nmfsep.errors import ParameterError
from nmfsep.model import NMFModel
from nmfsep.options import SeparateOptions
from nmfsep.separation import separate
from nmfsep.streaming import separate_file


@pytest.fixture(scope="module")
def model() -> NMFModel:
    return tone_hiss_model()


@pytest.fixture(scope="module")
def mix() -> np.ndarray:
    # stereo, odd length: the second channel is quieter and slightly different
    m = tones(2.1, seed=2) + hiss(2.1, seed=3)
    return np.stack([m, 0.6 * m + 0.01 * hiss(2.1, seed=9)])[:, :-5]


def _chunked(sep: Separator, y: np.ndarray, sizes: list[int]) -> dict[str, np.ndarray]:
    """Push y (channels, n) through the chunk API in chunks of the given sizes (cycled)."""
    parts: dict[str, list[np.ndarray]] = {n: [] for n in sep.names}
    i, k = 0, 0
    while i < y.shape[1]:
        n = sizes[k % len(sizes)]
        for name, out in sep.process(y[:, i : i + n].T).items():
            parts[name].append(out)
        i, k = i + n, k + 1
    for name, out in sep.flush().items():
        parts[name].append(out)
    return {name: np.concatenate(p).T for name, p in parts.items()}


def _full_scale_error(a: np.ndarray, b: np.ndarray, level: float) -> float:
    return float(np.abs(a - b).max() / level)


@pytest.mark.parametrize("free", [0, 3])
@pytest.mark.parametrize("level", [1e-6, 0.3, 1e5])
@pytest.mark.parametrize("block_seconds", [None, 0.3])
def test_outputs_scale_with_the_input_on_every_path(
    model: NMFModel, mix: np.ndarray, tmp_path: Path, free: int, level: float, block_seconds
) -> None:
    """level x free-components x one-or-many-blocks: the unit-level result, scaled; the chunk
    API, the array API and the file path give the same samples."""
    peak = float(np.abs(mix).max())
    opts = SeparateOptions(free_components=free, block_seconds=block_seconds, max_iter=15)
    unit = separate(mix / peak, SR, model, options=opts)
    y = (mix / peak * level).astype(np.float32)
    scaled = separate(y, SR, model, options=opts)
    expected_blocks = 1 if block_seconds is None else -(-(1 + y.shape[1] // 64) // 38)
    assert scaled.settings["streaming"]["blocks"] == expected_blocks
    for name in unit.sources:
        # level-independent up to float32 rounding (the level gain is a power of two)
        err = _full_scale_error(scaled.sources[name] / level, unit.sources[name], 1.0)
        assert err < 1e-4, (name, err)
    total = sum(scaled.sources.values())
    assert _full_scale_error(total, y, level) < 1e-5  # sources sum to the mixture

    # the chunk API, in chunks of 1, 7 and 300 samples, equals the array API
    chunks = _chunked(Separator(model, sr=SR, channels=2, options=opts), y, [1, 7, 300])
    for name in scaled.sources:
        assert _full_scale_error(chunks[name], scaled.sources[name], level) < 1e-4

    # the file path (float WAV, any level) writes the same samples
    src = tmp_path / "in.wav"
    sf.write(src, y.T, SR, subtype="FLOAT")
    outs = {name: str(tmp_path / f"{name}.wav") for name in scaled.sources}
    separate_file(src, outs, model, options=opts, subtypes=dict.fromkeys(outs, "FLOAT"))
    for name, path in outs.items():
        data, _ = sf.read(path, dtype="float32", always_2d=True)
        assert _full_scale_error(data.T, scaled.sources[name], level) < 1e-4


def test_supervised_streaming_is_exact_across_block_sizes(model: NMFModel, mix) -> None:
    """Fixed bases: frames are independent, so any block size gives the whole-file result
    (with tol=0: the same iterations for every frame)."""
    whole = separate(mix, SR, model, tol=0, max_iter=10)
    for block_seconds in (0.05, 0.3, 1.0):
        blocks = separate(mix, SR, model, tol=0, max_iter=10, block_seconds=block_seconds)
        assert blocks.settings["streaming"]["blocks"] > 1
        for name in whole.sources:
            err = _full_scale_error(blocks.sources[name], whole.sources[name], 1.0)
            assert err < 1e-5, (block_seconds, name, err)


def test_threads_give_the_same_result(model: NMFModel, mix: np.ndarray) -> None:
    one = separate(mix, SR, model, block_seconds=0.2)
    two = separate(mix, SR, model, block_seconds=0.2, n_threads=2)
    for name in one.sources:
        np.testing.assert_array_equal(one.sources[name], two.sources[name])


def test_chunk_api_shapes_latency_and_reset(model: NMFModel) -> None:
    y = tones(1.0) + hiss(1.0)
    sep = Separator(model, sr=SR, block_seconds=0.1)
    plan = sep.plan
    assert sep.latency == (plan.block_frames - 1 + plan.extra_frames) * 64 + 256
    got = 0
    first_out_at = None
    for i in range(0, y.size, 10):
        out = sep.process(y[i : i + 10])
        assert set(out) == {"voice", "hiss"}
        assert out["voice"].ndim == 1  # mono 1-D in, 1-D out
        got += out["voice"].size
        if got and first_out_at is None:
            first_out_at = i + 10
        assert i + 10 - got <= sep.latency  # no sample waits longer than the latency
    rest = sep.flush()
    assert got + rest["voice"].size == y.size
    assert first_out_at is not None and first_out_at <= sep.latency + 10
    with pytest.raises(ParameterError, match="reset"):
        sep.process(y[:10])
    sep.reset()
    a = sep.process(y)
    b = sep.flush()
    assert a["voice"].size + b["voice"].size == y.size
    # (n, channels) input gives (m, channels) outputs
    stereo = Separator(model, sr=SR, channels=2)
    stereo.process(np.stack([y, y], axis=1))
    assert stereo.flush()["voice"].shape == (y.size, 2)


def test_chunk_api_refuses_bad_input(model: NMFModel) -> None:
    sep = Separator(model, sr=SR)
    with pytest.raises(ParameterError, match="channel"):
        sep.process(np.zeros((10, 2), np.float32))
    with pytest.raises(ParameterError, match="NaN"):
        sep.process(np.full(10, np.nan, np.float32))
    with pytest.raises(ParameterError, match="no audio"):
        Separator(model, sr=SR).flush()
    with pytest.raises(ParameterError, match="unknown option"):
        Separator(model, sr=SR, masks_power=2)
    with pytest.raises(ParameterError, match="mask_power"):
        Separator(model, sr=SR, mask_power=0)


def test_plan_maps_the_model_onto_another_rate(model: NMFModel) -> None:
    plan = SeparationPlan.create(model, sr=11025, channels=1)
    assert plan.config.n_fft == 352 and plan.n_modelled < plan.config.n_freq
    assert plan.W.shape == (3 * plan.n_modelled, 12)
    y = np.random.default_rng(0).standard_normal(11025).astype(np.float32) * 0.1
    result = separate(y, 11025, model)
    assert result.sources["voice"].shape == (1, 11025)
    assert np.abs(sum(result.sources.values()) - y).max() < 1e-5


def test_safe_gain_is_a_power_of_two() -> None:
    for peak in (1e-9, 3e-7, 1e5, 3e20):
        g = safe_gain(np.array([peak], np.float32))
        assert g != 1.0 and np.log2(g) == int(np.log2(g))
        assert 2.0**-20 <= peak * g <= 2.0**13
    assert safe_gain(np.array([0.5], np.float32)) == 1.0
    assert safe_gain(np.zeros(3, np.float32)) == 1.0
    # subnormal peaks: the gain stays a finite float32 (at most 2**126) and lifts them
    for peak in (5e-41, 1.4e-45):
        g = safe_gain(np.array([peak], np.float32))
        assert g == 2.0**126 and np.isfinite(np.float32(g))
        assert np.float32(peak) * np.float32(g) >= 2.0**-23


def test_analysis_bands_layout() -> None:
    from nmfsep.engine import analysis_bands

    f = np.linspace(0, 8000, 1025)
    for n in (64, 256, 512):
        b = analysis_bands(f, n)
        assert b[0] == 0 and np.all(np.diff(b) > 0) and b[-1] < f.size
        assert abs(b.size - n) <= 2
        widths = np.diff(np.r_[b, f.size])
        assert widths[-1] > widths[0]  # wider bands at high frequencies
        assert n < 256 or widths[0] == 1  # every bin kept at low frequencies
        assert np.all(np.diff(widths) >= -1)  # widths grow with frequency (up to rounding)
    np.testing.assert_array_equal(analysis_bands(f[:100], 256), np.arange(100))


def test_compressed_analysis_gives_nearly_the_same_separation(model: NMFModel) -> None:
    voice, noise = tones(2.0, seed=2), hiss(2.0, seed=3)
    y = voice + noise

    def sdr(est: np.ndarray) -> float:
        return float(10 * np.log10(np.sum(voice**2) / np.sum((voice - est) ** 2)))

    full = separate(y, SR, model, analysis_bands=0)
    bands = separate(y, SR, model, analysis_bands=32)
    assert full.settings["analysis_bands"] is None
    assert bands.settings["analysis_bands"] == 32
    assert abs(sdr(bands.sources["voice"][0]) - sdr(full.sources["voice"][0])) < 1.0
    assert sdr(bands.sources["voice"][0]) > sdr(y) + 5
    np.testing.assert_allclose(sum(bands.sources.values())[0], y, atol=1e-5)
    # free bases are learned on the full grid: no compressed analysis then
    semi = separate(y, SR, model, analysis_bands=32, free_components=2)
    assert semi.settings["analysis_bands"] is None


def test_a_model_recommends_its_analysis_grid_and_iterations(model: NMFModel) -> None:
    """``analysis_bands`` and ``max_iter`` left at None take the model's recommendation (0 =
    every bin), else the defaults; explicit values win; 1..7 bands are refused."""
    import dataclasses

    voice, noise = tones(2.0, seed=2), hiss(2.0, seed=3)
    y = voice + noise
    rec = {"free_components": 2, "free_source": "hiss", "analysis_bands": 0, "max_iter": 5}
    recommending = dataclasses.replace(model)
    recommending.metadata = {**model.metadata, "separation": rec}
    plan = SeparationPlan.create(recommending, sr=SR)
    assert plan.options.max_iter == 5 and plan.bands is None
    result = separate(y, SR, recommending)
    assert result.settings["max_iter"] == 5 and result.settings["analysis_bands"] is None
    assert result.n_iter <= 5
    np.testing.assert_allclose(sum(result.sources.values())[0], y, atol=1e-5)
    banded = SeparationPlan.create(
        recommending, sr=SR, options=SeparateOptions(analysis_bands=32, max_iter=9)
    )
    assert banded.options.max_iter == 9 and banded.bands is not None
    assert banded.settings()["analysis_bands"] == banded.bands.size
    # without a recommendation: the library defaults
    plain = SeparationPlan.create(model, sr=SR)
    assert plain.options.max_iter == defaults.SEPARATE_ITER
    assert plain.options.analysis_bands == defaults.ANALYSIS_BANDS
    for bad in (1, 7, -1):
        with pytest.raises(ParameterError, match="analysis_bands"):
            SeparateOptions(analysis_bands=bad)
    bad_rec = dataclasses.replace(model)
    bad_rec.metadata = {**model.metadata, "separation": {"max_iter": 0}}
    with pytest.raises(ParameterError, match="max_iter"):
        SeparationPlan.create(bad_rec, sr=SR)


def test_a_model_recommends_its_separation_settings(model: NMFModel) -> None:
    """Options left at None take the model's metadata["separation"]; explicit ones win."""
    import dataclasses

    voice, noise = tones(2.0, seed=2), hiss(2.0, seed=3)
    y = voice + noise
    rec = {"free_components": 2, "mask_power": 1.0, "free_source": "hiss"}
    recommending = dataclasses.replace(model)
    recommending.metadata = {**model.metadata, "separation": rec}
    plan = SeparationPlan.create(recommending, sr=SR)
    assert plan.names == ("voice", "hiss")  # the free bases adapt the noise: no 'residual'
    assert plan.free_components == 2 and plan.options.mask_power == 1.0 and plan.l1 == 0.0
    assert plan.components == {"voice": 6, "hiss": 8}
    result = separate(y, SR, recommending)
    assert set(result.sources) == {"voice", "hiss"}
    assert result.settings["free_source"] == "hiss" and result.settings["mask_power"] == 1.0
    np.testing.assert_allclose(sum(result.sources.values())[0], y, atol=1e-5)
    # explicit options override the recommendation
    plain = SeparationPlan.create(recommending, sr=SR, options=SeparateOptions(free_components=0))
    assert plain.free_components == 0 and plain.options.mask_power == 1.0
    own = SeparationPlan.create(recommending, sr=SR, options=SeparateOptions(free_components=3))
    assert own.names == ("voice", "hiss", "residual")  # a count without a source: residual
    p2 = SeparationPlan.create(recommending, sr=SR, options=SeparateOptions(mask_power=2.0))
    assert p2.options.mask_power == 2.0 and p2.free_components == 2
    # a model without a recommendation: the defaults
    assert SeparationPlan.create(model, sr=SR).free_components == 0
    with pytest.raises(ParameterError, match="free_source"):
        SeparationPlan.create(
            model, sr=SR, options=SeparateOptions(free_components=2, free_source="drums")
        )


def test_chunk_of_the_wrong_channel_count_is_named_in_the_callers_layout() -> None:
    sep = Separator(None, sr=16000)
    with pytest.raises(ParameterError, match=r"shape \(n,\) or \(n, 1\); got \(100, 2\)"):
        sep.process(np.zeros((100, 2), np.float32))
    stereo = Separator(None, sr=16000, channels=2)
    with pytest.raises(ParameterError, match=r"shape \(n, 2\); got \(100,\)"):
        stereo.process(np.zeros(100, np.float32))


def test_unit_mean_balances_the_frames_as_asked() -> None:
    """frame_balance 1: every frame at mean 1; 0: the block; b: frame t over m_t^b m^(1-b)."""
    from nmfsep.engine import _unit_mean

    rng = np.random.default_rng(0)
    V = np.abs(rng.standard_normal((16, 9))).astype(np.float32)
    V[:, 3] = 0.0  # a silent frame stays silent at every balance
    V[:, 7] *= 1e3  # a loud attack
    m_t, m = V.mean(axis=0), V.mean()
    each = _unit_mean(V, balance=1.0)
    np.testing.assert_allclose(np.delete(each.mean(axis=0), 3), 1.0, rtol=1e-5)
    whole = _unit_mean(V, balance=0.0)
    assert abs(float(whole.mean()) - 1.0) < 1e-5
    np.testing.assert_allclose(whole, V / m, rtol=1e-5)
    half = _unit_mean(V, balance=0.5)
    expect = V / np.sqrt(np.where(m_t > 0, m_t, 1.0) * m_t.mean())
    np.testing.assert_allclose(half, expect, rtol=1e-5)
    for out in (each, whole, half):
        assert out.dtype == np.float32 and not out[:, 3].any()
    assert not _unit_mean(np.zeros((4, 3), np.float32), balance=0.5).any()


def test_frame_balance_decouples_the_frames_loudness_with_free_bases(model: NMFModel) -> None:
    """With free bases and frame_balance 1, one frame made 1000x louder leaves every frame's
    masks as they were (each frame counts the same in the fit); at 0 it moves the others."""
    from nmfsep.engine import fit_masks

    moved = {}
    for balance in (0.0, 1.0):
        opts = SeparateOptions(free_components=2, frame_balance=balance, max_iter=20)
        plan = SeparationPlan.create(model, sr=SR, options=opts)
        rng = np.random.default_rng(4)
        V = np.abs(rng.standard_normal((plan.config.n_freq, 40))).astype(np.float32) + 0.05
        loud = V.copy()
        loud[:, 30] *= 1e3
        a, b = fit_masks(plan, V, None)[0], fit_masks(plan, loud, None)[0]
        moved[balance] = float(np.abs(np.delete(a - b, 30, axis=2)).max())
    assert moved[1.0] < 1e-3 < moved[0.0]


def test_the_models_frame_balance_and_l1_ride_with_its_free_bases(model: NMFModel) -> None:
    import dataclasses

    rec = {"free_components": 2, "free_source": "hiss", "frame_balance": 1.0, "l1": 0.5}
    recommending = dataclasses.replace(model)
    recommending.metadata = {**model.metadata, "separation": rec}
    plan = SeparationPlan.create(recommending, sr=SR)
    assert plan.options.frame_balance == 1.0 and plan.l1 == 0.5
    res = separate(tones(1.0, seed=2) + hiss(1.0, seed=3), SR, recommending)
    assert res.settings["frame_balance"] == 1.0 and res.settings["l1"] == 0.5
    # fixed bases only: neither is the model's (its l1 was measured with its free bases)
    fixed = SeparationPlan.create(recommending, sr=SR, options=SeparateOptions(free_components=0))
    assert fixed.options.frame_balance == 0.0 and fixed.l1 == defaults.SEPARATE_L1
    # free bases of the user's own count: the library's defaults, as with free_source
    own = SeparationPlan.create(recommending, sr=SR, options=SeparateOptions(free_components=2))
    assert own.options.frame_balance == 0.0 and own.l1 == defaults.SEMI_SUPERVISED_L1
    # explicit values win
    mine = SeparateOptions(frame_balance=0.25, l1=0.1)
    p = SeparationPlan.create(recommending, sr=SR, options=mine)
    assert p.options.frame_balance == 0.25 and p.l1 == 0.1
    assert "frame_balance" not in separate(tones(1.0, seed=2), SR, model).settings


@pytest.mark.parametrize("bad", [-0.1, 1.5, float("nan"), "x", True])
def test_bad_frame_balance_is_the_parameter_error(bad) -> None:
    with pytest.raises(ParameterError, match="frame_balance must be"):
        SeparateOptions(frame_balance=bad)
