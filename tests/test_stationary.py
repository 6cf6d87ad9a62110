"""The stationary-noise expert (``nmfsep.stationary``, ``SeparateOptions.stationary_blend``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from _cli import check_weight_option
from _paths import assert_paths_agree
from _signals import SR as SR8K
from _signals import hiss, tone_hiss_model, tones
from typer.testing import CliRunner

from nmfsep.cli import app
from nmfsep.errors import ParameterError
from nmfsep.metrics import bss_eval
from nmfsep.separation import separate
from nmfsep.stationary import (
    ExpertSettings,
    dd_wiener,
    expert_weight,
    stationarity_db,
    stationary_expert,
)

SAMPLES = Path(__file__).resolve().parents[1] / "sample_audio"
SR = 16000


def _sdr(ref: np.ndarray, est: np.ndarray) -> float:
    return float(bss_eval(ref, est)["sdr"][0])


def _white(seconds: float, sr: int = SR8K, level: float = 0.05, seed: int = 3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (level * rng.standard_normal(int(seconds * sr))).astype(np.float32)


def _bursts(seconds: float, sr: int = SR8K) -> np.ndarray:
    """White noise on for 0.2 s of every second: a noise with no stationary floor."""
    t = np.arange(int(seconds * sr)) / sr
    return _white(seconds, sr, level=0.15) * ((t % 1.0) < 0.2)


def test_the_filter_removes_stationary_noise_and_keeps_the_shape() -> None:
    s = tones(4.0)
    n = _white(4.0, level=0.03)
    mix = (s + n)[None]
    y = dd_wiener(mix, sr=SR8K)
    assert y.shape == mix.shape and y.dtype == np.float32 and np.isfinite(y).all()
    # measured 7.6 dB over the mixture's SDR
    assert _sdr(s, y[0]) > _sdr(s, mix[0]) + 5.0
    # one gain for every channel: a scaled second channel comes out scaled
    both = dd_wiener(np.concatenate([mix, 0.5 * mix]), sr=SR8K)
    np.testing.assert_allclose(both[1], 0.5 * both[0], atol=1e-6)
    np.testing.assert_array_equal(dd_wiener(np.zeros((1, 4000), np.float32), sr=SR8K), 0.0)


def test_digital_silence_does_not_hide_the_noise_floor() -> None:
    """The zeros around a file (or a gap) must not pull the floor of the frames next to them to
    zero: the noise right after half a second of zeros is attenuated like the rest."""
    n = _white(2.0)
    x = np.concatenate([np.zeros(SR8K // 2, np.float32), n])[None]
    y = dd_wiener(x, sr=SR8K)
    after = slice(SR8K // 2, SR8K)  # the first half second of noise
    later = slice(2 * SR8K, 5 * SR8K // 2)
    ratio_after = float(np.mean(y[0, after] ** 2) / np.mean(x[0, after] ** 2))
    ratio_later = float(np.mean(y[0, later] ** 2) / np.mean(x[0, later] ** 2))
    # measured 0.003 and 0.005 (without the fix: 1.0 and 0.005)
    assert ratio_after < 0.05 and ratio_later < 0.05, (ratio_after, ratio_later)
    np.testing.assert_array_equal(y[0, : SR8K // 2 - 256], 0.0)


def test_the_gate_tells_a_stationary_noise_from_a_moving_one() -> None:
    s = tones(4.0)
    for noise, low, high in ((_white(4.0), -2.0, 3.0), (_bursts(4.0), -40.0, -6.0)):
        mix = (s + noise)[None]
        # a perfect separation removed the noise itself
        stat = stationarity_db(mix, noise[None], sr=SR8K)
        assert stat is not None and low < stat < high, stat
    assert stationarity_db(s[None], np.zeros((1, s.size), np.float32), sr=SR8K) is None
    silent = np.zeros((1, 8000), np.float32)
    assert stationarity_db(silent, silent, sr=SR8K) is None


def test_the_weight_ramps_from_the_floor_to_the_full_gate() -> None:
    s = ExpertSettings(full_db=-0.5, width_db=3.0)
    assert expert_weight(0.0, 0.7, s) == pytest.approx(0.7)
    assert expert_weight(-0.5, 0.7, s) == pytest.approx(0.7)
    assert expert_weight(-2.0, 0.7, s) == pytest.approx(0.35)
    assert expert_weight(-3.5, 0.7, s) == 0.0
    assert expert_weight(-20.0, 0.7, s) == 0.0
    assert expert_weight(None, 0.7, s) == 0.0
    assert expert_weight(5.0, 0.0, s) == 0.0


def test_the_expert_opens_by_the_gate_and_leans_on_the_removed_part_when_half_open() -> None:
    s = tones(4.0)
    white = _white(4.0, level=0.03)
    mix = (s + white)[None]
    est, weight, stat = stationary_expert(mix, white[None], sr=SR8K, weight=0.7)
    assert stat == pytest.approx(stationarity_db(mix, white[None], sr=SR8K), abs=1e-6)
    assert est is not None and est.shape == mix.shape and np.isfinite(est).all()
    assert weight == pytest.approx(expert_weight(stat, 0.7))
    # wide open (a floor of 0 dB is stationary noise): the textbook filter itself
    wide = ExpertSettings(full_db=-20.0, width_db=1.0)
    est_wide, w_wide, _ = stationary_expert(mix, white[None], sr=SR8K, weight=0.7, settings=wide)
    assert w_wide == pytest.approx(0.7)
    np.testing.assert_allclose(est_wide, dd_wiener(mix, sr=SR8K), atol=1e-6)
    # half open: the noise PSD leans on what the separation removed, so a removed part that
    # is the true noise does better than the floor alone (measured 17.0 vs 14.5 dB SDR)
    half = ExpertSettings(full_db=stat + 1.0, width_db=2.0)
    est_half, w_half, _ = stationary_expert(mix, white[None], sr=SR8K, weight=1.0, settings=half)
    assert w_half == pytest.approx(0.5)
    assert _sdr(s, est_half[0]) > _sdr(s, est_wide[0])
    # a noise with no floor: shut, no estimate
    bursts = _bursts(4.0)
    shut = stationary_expert((s + bursts)[None], bursts[None], sr=SR8K, weight=0.7)
    assert shut[0] is None and shut[1] == 0.0 and shut[2] is not None and shut[2] < -6.0
    # the gate looks at the core only: the bursts' quiet second alone looks stationary-ish
    x = (s + bursts)[None]
    quiet = stationary_expert(x, bursts[None], sr=SR8K, weight=0.7, core=(0, 2 * SR8K))
    assert quiet[2] is not None and quiet[2] != shut[2]
    nothing = stationary_expert(mix, np.zeros_like(mix), sr=SR8K, weight=0.7)
    assert nothing == (None, 0.0, None)


def test_in_the_engine_it_keeps_the_sum_and_is_reproducible() -> None:
    model = tone_hiss_model()
    y = tones(3.0) + 0.5 * hiss(3.0)  # a stationary hiss: the gate opens
    off = separate(y, SR8K, model)
    zero = separate(y, SR8K, model, stationary_blend=0.0)
    on = separate(y, SR8K, model, stationary_blend=0.7)
    again = separate(y, SR8K, model, stationary_blend=0.7)
    for name in off.sources:
        np.testing.assert_array_equal(zero.sources[name], off.sources[name])
        np.testing.assert_array_equal(on.sources[name], again.sources[name])
        assert np.isfinite(on.sources[name]).all()
    np.testing.assert_allclose(on.sources["voice"] + on.sources["hiss"], y[None], atol=2e-5)
    assert not np.allclose(on.sources["voice"], off.sources["voice"], atol=1e-4)
    assert on.settings["stationary_blend"] == 0.7
    assert "stationary_blend" not in off.settings
    # silence: no NaN, no expert
    quiet = separate(np.zeros(SR8K, np.float32), SR8K, model, stationary_blend=0.7)
    assert all(np.array_equal(v, 0.0 * v) for v in quiet.sources.values())
    with pytest.raises(ParameterError, match="two sources"):
        separate(y, SR8K, model, stationary_blend=0.7, free_components=2)
    with pytest.raises(ParameterError, match="stationary_blend"):
        separate(y, SR8K, model, stationary_blend=1.5)


def test_it_helps_the_built_in_model_in_steady_noise_and_stays_out_of_bursts() -> None:
    speech, _ = sf.read(SAMPLES / "speech.wav", dtype="float32")
    tavern, _ = sf.read(SAMPLES / "noise.wav", dtype="float32")
    level = float(np.sqrt(np.mean(speech**2)))
    white = _white(speech.size / SR, SR, level=level)
    # measured: 0 dB of white noise 7.91 -> 8.69 dB SDR; the tavern (sample_audio/mix.wav, a
    # steady kitchen hum under its clatter: the gate half open) 10.12 -> 11.82
    for noise in (white, tavern):
        mix = speech + noise
        off = separate(mix, SR, stationary_blend=0.0)
        on = separate(mix, SR)  # the built-in model recommends the expert
        assert on.settings["stationary_blend"] == 0.7
        np.testing.assert_allclose(on.sources["speech"] + on.sources["noise"], mix[None], atol=2e-5)
        sdr_on, sdr_off = (
            _sdr(speech, on.sources["speech"][0]),
            _sdr(speech, off.sources["speech"][0]),
        )
        assert sdr_on > sdr_off + 0.5, (sdr_on, sdr_off)
    # noise that is off 80 % of the time has no floor: the gate stays shut, nothing changes
    t = np.arange(speech.size) / SR
    bursts = 3 * _white(speech.size / SR, SR, level=level) * ((t % 1.0) < 0.2)
    busy = speech + bursts
    np.testing.assert_array_equal(
        separate(busy, SR).sources["speech"],
        separate(busy, SR, stationary_blend=0.0).sources["speech"],
    )


def test_a_recommended_expert_steps_aside_for_a_third_source(tmp_path: Path) -> None:
    """The built-in model recommends the expert; free bases of their own (a ``residual``
    source) make three sources, and the separation runs without it rather than failing."""
    speech, _ = sf.read(SAMPLES / "speech.wav", dtype="float32", frames=2 * SR)
    mix = speech + _white(2.0, SR, level=0.03)
    three = separate(mix, SR, free_components=3)
    assert list(three.sources) == ["speech", "noise", "residual"]
    assert "stationary_blend" not in three.settings
    np.testing.assert_allclose(sum(three.sources.values()), mix[None], atol=2e-5)
    with pytest.raises(ParameterError, match="two sources"):
        separate(mix, SR, free_components=3, stationary_blend=0.7)
    src = tmp_path / "mix.wav"
    sf.write(src, mix, SR, subtype="FLOAT")
    out = tmp_path / "out"
    args = ["separate", str(src), "-o", str(out), "--free-components", "3", "-q"]
    runner = CliRunner()
    assert runner.invoke(app, args).exit_code == 0
    assert sorted(p.name for p in (out / "mix").iterdir()) == [
        "noise.wav",
        "residual.wav",
        "speech.wav",
    ]
    r = runner.invoke(app, [*args, "-o", str(tmp_path / "refused"), "--stationary-blend", "0.5"])
    # one line naming the file and the problem, no output written
    assert r.exit_code == 1, r.output
    assert r.output.startswith(f"error: {src}: stationary_blend needs a separation into two")
    assert r.output.count("\n") == 1
    assert not (tmp_path / "refused").exists()


def test_live_file_and_memory_paths_give_the_same_samples(tmp_path: Path) -> None:
    model = tone_hiss_model()
    mono = tones(3.0) + 0.5 * hiss(3.0)
    stereo = np.stack([mono, 0.7 * mono[::-1].copy()])
    opts = {"stationary_blend": 0.7, "block_seconds": 1.0}
    _, memory = assert_paths_agree(tmp_path, stereo, SR8K, model, chunk=3000, **opts)
    off = separate(stereo, SR8K, model, block_seconds=1.0)
    assert not np.allclose(memory.sources["voice"], off.sources["voice"], atol=1e-4)


def test_separate_command_with_stationary_blend(tmp_path: Path) -> None:
    speech, _ = sf.read(SAMPLES / "speech.wav", dtype="float32", frames=2 * SR)
    src = tmp_path / "mix.wav"
    sf.write(src, speech + _white(2.0, SR, level=0.03), SR, subtype="FLOAT")
    check_weight_option(src, tmp_path, "--stationary-blend", 0.7)
