"""Tests of nmfsep.metrics (short synthetic signals only)."""

from __future__ import annotations

import builtins
import sys
import warnings

import numpy as np
import pytest

from nmfsep import metrics
from nmfsep.errors import NmfsepError, ParameterError
from nmfsep.spectral import STFTConfig

SR = 8000


def _signals(n_src: int = 2, n: int = 4000, seed: int = 0) -> np.ndarray:
    """Coloured noise sources (full-rank, like real audio), 0.5 s at 8 kHz."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n_src, n))
    kernel = np.exp(-np.arange(16) / (2.0 + np.arange(n_src)[:, None]))
    return np.stack([np.convolve(x[i], kernel[i], mode="same") for i in range(n_src)])


def _orthogonal_noise(ref: np.ndarray, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    noise = rng.standard_normal(ref.shape)
    return noise - (noise @ ref) / (ref @ ref) * ref


# ------------------------------------------------------------------------------------- SI-SDR


def test_si_sdr_known_value_orthogonal_noise() -> None:
    ref = _signals(1)[0]
    noise = _orthogonal_noise(ref)
    target_db = 7.0
    noise *= np.sqrt(np.sum(ref**2) / np.sum(noise**2) / 10 ** (target_db / 10))
    # scaling the estimate scales target and noise alike: SI-SDR unchanged
    for scale in (1.0, 0.3, -2.0):
        assert metrics.si_sdr(ref, scale * (ref + noise)) == pytest.approx(target_db, abs=1e-9)


def test_si_sdr_hand_computation_and_scaled_copy() -> None:
    s = np.array([1.0, 2.0, -1.0, 0.5])
    e = np.array([1.5, 1.0, -0.5, 1.0])
    a = (e @ s) / (s @ s)
    expected = 10 * np.log10(np.sum((a * s) ** 2) / np.sum((e - a * s) ** 2))
    assert metrics.si_sdr(s, e) == pytest.approx(expected, rel=1e-12)
    assert metrics.si_sdr(s, 2.0 * s) > 250  # exact up to rounding


def test_si_sdr_degenerate_values_without_warnings() -> None:
    ref = _signals(1)[0]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert metrics.si_sdr(ref, np.zeros_like(ref)) == -np.inf
        assert np.isnan(metrics.si_sdr(np.zeros_like(ref), ref))
        assert metrics.si_sdr(np.ones(4), np.ones(4)) == np.inf
        assert metrics.snr(ref, ref) == np.inf


def test_si_sdr_batched_and_float32() -> None:
    refs = _signals(2)
    ests = refs + 0.1 * _signals(2, seed=5)
    batch = metrics.si_sdr(refs, ests.astype(np.float32))
    assert isinstance(batch, np.ndarray) and batch.shape == (2,)
    for i in range(2):
        assert batch[i] == pytest.approx(metrics.si_sdr(refs[i], ests[i]), abs=1e-4)


def test_snr_known_value() -> None:
    ref = np.array([3.0, 4.0])
    est = np.array([3.0, 3.0])  # error energy 1, signal energy 25
    assert metrics.snr(ref, est) == pytest.approx(10 * np.log10(25.0))


def test_length_mismatch_rules() -> None:
    ref = _signals(1)[0]
    # within 1 %: trimmed to the shorter
    assert metrics.si_sdr(ref[:-10], ref) > 200
    with pytest.raises(ParameterError, match="lengths differ"):
        metrics.si_sdr(ref[:3000], ref)
    with pytest.raises(ParameterError):
        metrics.si_sdr(ref, np.full_like(ref, np.nan))


# ------------------------------------------------------------------------------------ BSS-eval


def test_bss_eval_agrees_with_fast_bss_eval() -> None:
    import fast_bss_eval

    refs = _signals(2)
    ests = np.stack([refs[0] + 0.3 * refs[1], refs[1]]) + 0.2 * _signals(2, seed=9)
    ours = metrics.bss_eval(refs, ests)
    sdr, sir, sar, _perm = fast_bss_eval.bss_eval_sources(refs, ests)
    np.testing.assert_allclose(ours["sdr"], sdr, atol=1e-6)
    np.testing.assert_allclose(ours["sir"], sir, atol=1e-6)
    np.testing.assert_allclose(ours["sar"], sar, atol=1e-6)
    np.testing.assert_array_equal(ours["perm"], [0, 1])


def test_bss_eval_agrees_with_mir_eval() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        import mir_eval

        refs = _signals(2, n=3000)
        ests = np.stack([refs[0] + 0.3 * refs[1], refs[1]]) + 0.2 * _signals(2, n=3000, seed=9)
        sdr, sir, sar, _perm = mir_eval.separation.bss_eval_sources(refs, ests)
    ours = metrics.bss_eval(refs, ests)
    # mir_eval and fast_bss_eval solve the same least squares, differently (a few 0.01 dB)
    np.testing.assert_allclose(ours["sdr"], sdr, atol=0.05)
    np.testing.assert_allclose(ours["sir"], sir, atol=0.05)
    np.testing.assert_allclose(ours["sar"], sar, atol=0.05)


def test_bss_eval_single_source() -> None:
    import fast_bss_eval

    ref = _signals(1)[0]
    est = ref + 0.3 * _signals(1, seed=4)[0]
    res = metrics.bss_eval(ref, est)
    expected = fast_bss_eval.sdr(ref[None], est[None])[0]
    assert res["sdr"][0] == pytest.approx(expected, abs=1e-6)
    assert res["sir"][0] == np.inf
    assert res["sar"][0] == pytest.approx(res["sdr"][0], abs=1e-6)
    # also with permutation solving and more estimates than references
    res2 = metrics.bss_eval(ref, np.stack([_signals(1, seed=7)[0], est]), compute_permutation=True)
    assert res2["perm"][0] == 1
    assert res2["sdr"][0] == pytest.approx(expected, abs=1e-6)


def test_bss_eval_permutation_and_silence() -> None:
    refs = _signals(2)
    ests = refs[::-1] + 0.05 * _signals(2, seed=3)
    res = metrics.bss_eval(refs, ests, compute_permutation=True)
    np.testing.assert_array_equal(res["perm"], [1, 0])
    assert np.all(res["sdr"] > 15)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        noisy = refs[0] + 0.1 * _signals(1, seed=8)[0]
        silent_est = metrics.bss_eval(refs, np.stack([noisy, np.zeros(4000)]))
        assert silent_est["sdr"][1] == -np.inf and np.isfinite(silent_est["sdr"][0])
        silent_ref = metrics.bss_eval(np.stack([refs[0], np.zeros(4000)]), refs)
        assert np.isnan(silent_ref["sdr"][1]) and silent_ref["sdr"][0] > 100
        assert silent_ref["sir"][0] == np.inf  # the only audible reference


def test_bss_eval_bad_input() -> None:
    refs = _signals(2)
    with pytest.raises(ParameterError, match="compute_permutation"):
        metrics.bss_eval(refs, refs[:1])
    with pytest.raises(ParameterError, match="at least 2 estimates"):
        metrics.bss_eval(refs, refs[:1], compute_permutation=True)
    with pytest.raises(ParameterError, match="shorter"):
        metrics.bss_eval(refs[:, :100], refs[:, :100])
    with pytest.raises(ParameterError):
        metrics.bss_eval(refs, refs, filter_length=0)


def test_missing_eval_extra_message(monkeypatch: pytest.MonkeyPatch) -> None:
    real_import = builtins.__import__

    def fake_import(name: str, *args: object, **kwargs: object) -> object:
        if name == "fast_bss_eval" or name.startswith("fast_bss_eval."):
            raise ImportError("No module named 'fast_bss_eval'")
        return real_import(name, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.delitem(sys.modules, "fast_bss_eval", raising=False)
    monkeypatch.setattr(builtins, "__import__", fake_import)
    refs = _signals(2)
    with pytest.raises(NmfsepError) as info:
        metrics.bss_eval(refs, refs)
    assert "pip install 'nmfsep[eval]'" in str(info.value)
    assert not isinstance(info.value, ParameterError)
    # SI-SDR alone still works without the extra
    scores = metrics.evaluate_separation(refs, refs, bss=False)
    assert scores[0].sdr is None and scores[0].si_sdr > 100


# ------------------------------------------------------------------------- evaluate_separation


def test_evaluate_separation_permutation_and_improvement() -> None:
    refs = _signals(2)
    mix = refs.sum(axis=0)
    good = refs + 0.05 * _signals(2, seed=3)
    extra = _signals(1, seed=11)[0]
    ests = np.stack([good[1], extra, good[0]])  # shuffled, one spurious estimate
    scores = metrics.evaluate_separation(refs, ests, mixture=mix, names=["a", "b"])
    assert [s.name for s in scores] == ["a", "b"]
    assert [s.estimate_index for s in scores] == [2, 0]
    direct = metrics.bss_eval(refs, good)
    mix_bss = metrics.bss_eval(refs, np.stack([mix, mix]))
    for i, s in enumerate(scores):
        assert s.sdr == pytest.approx(direct["sdr"][i], abs=1e-9)
        assert s.si_sdr == pytest.approx(metrics.si_sdr(refs[i], good[i]), abs=1e-9)
        assert s.mixture_si_sdr == pytest.approx(metrics.si_sdr(refs[i], mix), abs=1e-9)
        assert s.mixture_sdr == pytest.approx(mix_bss["sdr"][i], abs=1e-9)
        assert s.si_sdr_improvement == pytest.approx(s.si_sdr - s.mixture_si_sdr)
        assert s.sdr_improvement == pytest.approx(s.sdr - s.mixture_sdr)
        assert s.sdr_improvement > 10
    assert set(scores[0].to_dict()) >= {"sdr", "sir", "sar", "si_sdr", "estimate_index"}


def test_evaluate_separation_without_permutation_and_errors() -> None:
    refs = _signals(2)
    scores = metrics.evaluate_separation(refs, refs[::-1], solve_permutation=False, bss=False)
    assert [s.estimate_index for s in scores] == [0, 1]
    assert scores[0].mixture_sdr is None and scores[0].si_sdr < 0
    with pytest.raises(ParameterError, match="names"):
        metrics.evaluate_separation(refs, refs, names=["x"], bss=False)
    with pytest.raises(ParameterError, match="mixture"):
        metrics.evaluate_separation(refs, refs, mixture=refs, bss=False)
    with pytest.raises(ParameterError):
        metrics.evaluate_separation(refs, refs[:1], bss=False)


# ------------------------------------------------------------------------------------- oracle


def test_oracle_wiener_two_tones() -> None:
    t = np.arange(SR // 2) / SR
    rng = np.random.default_rng(0)
    low = np.sin(2 * np.pi * 300 * t) + 0.01 * rng.standard_normal(t.size)
    high = 0.5 * np.sin(2 * np.pi * 2500 * t) + 0.01 * rng.standard_normal(t.size)
    sources = np.stack([low, high])
    config = STFTConfig(n_fft=256, hop_length=64)
    est = metrics.oracle_wiener_estimates(sources, config=config)
    assert est.shape == sources.shape and est.dtype == np.float64
    np.testing.assert_allclose(est.sum(axis=0), sources.sum(axis=0), atol=1e-6)
    assert np.all(np.asarray(metrics.si_sdr(sources, est)) > 20)
    assert np.all(metrics.bss_eval(sources, est)["sdr"] > 20)
    with pytest.raises(ParameterError):
        metrics.oracle_wiener_estimates(sources, config=config, power=0)


def test_long_signals_are_scored_in_segments_with_the_same_result(monkeypatch) -> None:
    """BSS-eval of long files runs segment by segment (bounded memory); the energy-weighted
    combination agrees with the one-piece score."""
    from nmfsep import metrics as m

    rng = np.random.default_rng(3)
    n = 120_000
    s = rng.standard_normal((2, n)) * np.array([[1.0], [0.5]])
    est = s + 0.1 * rng.standard_normal((2, n))
    est[0] += 0.2 * s[1]
    whole = m.bss_eval(s, est)
    monkeypatch.setattr(m, "BSS_SEGMENT", 25_000)
    parts = m.bss_eval(s, est)
    for key in ("sdr", "sar"):
        np.testing.assert_allclose(parts[key], whole[key], atol=0.3)
    # SIR near 40 dB is the ratio of two coherences within 1e-4 of 1: compare the moderate one
    np.testing.assert_allclose(parts["sir"][0], whole["sir"][0], atol=0.3)
    assert parts["sir"][1] > 25
    assert parts["sdr"][0] > 15 and np.all(np.isfinite(parts["sdr"]))
