"""The learned mask refiner (nmfsep.refine): forward pass, storage, masks, separation option."""

from __future__ import annotations

import dataclasses
import itertools
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
from _signals import SR, hiss, tone_hiss_model, tones

from nmfsep import refine
from nmfsep.errors import ModelError, ParameterError
from nmfsep.metrics import bss_eval
from nmfsep.model import NMFModel, describe_model, load_model
from nmfsep.separation import separate
from nmfsep.spectral import stft

N_MELS = 24


def _random_refiner(seed: int = 0, hidden: tuple[int, ...] = (16,), n_mels: int = N_MELS):
    rng = np.random.default_rng(seed)
    n_in = 2 * n_mels * (2 * refine.CONTEXT + 1)
    sizes = (n_in, *hidden, n_mels)
    weights = tuple(
        (rng.standard_normal((a, b)) / np.sqrt(a)).astype(np.float32)
        for a, b in itertools.pairwise(sizes)
    )
    biases = tuple((0.1 * rng.standard_normal(b) + 0.5).astype(np.float32) for b in sizes[1:])
    return refine.Refiner(
        weights=weights,
        biases=biases,
        mean=rng.standard_normal(n_in).astype(np.float32),
        scale=rng.uniform(0.5, 2.0, n_in).astype(np.float32),
        n_mels=n_mels,
        fmax=SR / 2,
    )


@pytest.fixture(scope="module")
def model() -> NMFModel:
    return tone_hiss_model()


def test_forward_pass_matches_scikit_learn() -> None:
    """The numpy forward pass is scikit-learn's MLPRegressor.predict (clipped to [0, 1])."""
    from sklearn.neural_network import MLPRegressor

    rng = np.random.default_rng(0)
    n_in = 2 * N_MELS * (2 * refine.CONTEXT + 1)
    F = rng.standard_normal((400, n_in)).astype(np.float32)
    Y = 1 / (1 + np.exp(-F[:, :N_MELS]))
    mlp = MLPRegressor(hidden_layer_sizes=(12, 8), max_iter=30, random_state=0)
    with pytest.warns(Warning):  # not converged in 30 epochs: expected here
        mlp.fit(F, Y)
    r = refine.Refiner(
        weights=tuple(np.asarray(W, np.float32) for W in mlp.coefs_),
        biases=tuple(np.asarray(b, np.float32) for b in mlp.intercepts_),
        mean=np.zeros(n_in, np.float32),
        scale=np.ones(n_in, np.float32),
        n_mels=N_MELS,
    )
    np.testing.assert_allclose(r.predict(F), np.clip(mlp.predict(F), 0, 1), atol=1e-5)


@pytest.mark.parametrize(("sr", "n_fft", "fmax"), [(16000, 2048, 8000.0), (8000, 256, 4000.0),
                                                   (44100, 4096, 8000.0)])  # fmt: skip
def test_mel_filters_are_librosas(sr: int, n_fft: int, fmax: float) -> None:
    import librosa

    n_bins = n_fft // 2 + 1
    fb, back, covered = refine.mel_filters(sr, n_fft, n_bins, 40, fmax)
    ref = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=40, fmin=0.0, fmax=fmax, norm=None)
    np.testing.assert_allclose(fb, ref, atol=1e-5)
    freqs = np.linspace(0, sr / 2, n_bins)
    assert covered[(freqs > 50) & (freqs < fmax - 50)].all() and not covered[freqs > fmax].any()
    np.testing.assert_allclose(back[covered].sum(axis=1), 1.0, atol=1e-5)


def test_fit_refiner_learns_and_is_reproducible() -> None:
    rng = np.random.default_rng(1)
    n_in = 2 * N_MELS * (2 * refine.CONTEXT + 1)
    # features and targets that depend on 4 hidden factors (unstandardised features)
    Z = rng.standard_normal((3000, 4))
    F = (Z @ rng.standard_normal((4, n_in))).astype(np.float32) * 3 + 1
    Y = (1 / (1 + np.exp(-Z @ rng.standard_normal((4, N_MELS))))).astype(np.float32)
    a = refine.fit_refiner(F, Y, hidden=(16,), max_iter=100, n_mels=N_MELS)
    b = refine.fit_refiner(F, Y, hidden=(16,), max_iter=100, n_mels=N_MELS)
    for Wa, Wb in zip(a.weights, b.weights, strict=True):
        np.testing.assert_array_equal(Wa, Wb)
    err = np.mean((a.predict(F) - Y) ** 2)
    assert err < 0.2 * np.var(Y)


def test_refiner_checks_its_layout() -> None:
    r = _random_refiner()
    with pytest.raises(ModelError, match="chain"):
        dataclasses.replace(r, weights=(r.weights[0][:-1], *r.weights[1:]))
    with pytest.raises(ModelError, match="chain"):
        dataclasses.replace(r, n_mels=N_MELS + 1)  # the input size follows n_mels
    last = (r.weights[-1][:, :-1], r.biases[-1][:-1])
    with pytest.raises(ModelError, match="n_mels"):
        dataclasses.replace(r, weights=(*r.weights[:-1], last[0]), biases=(*r.biases[:-1], last[1]))
    bad = r.mean.copy()
    bad[0] = np.nan
    with pytest.raises(ModelError, match="finite"):
        dataclasses.replace(r, mean=bad)
    with pytest.raises(ModelError, match="positive"):
        dataclasses.replace(r, scale=np.zeros_like(r.scale))


def test_subnormal_weights_are_zeroed_without_changing_the_output() -> None:
    """Dead units' weights below float32's normal range (weight decay leaves them; the built-in
    network had 78 000) are stored as zeros: the CPU's slow path for subnormal products made
    the forward pass 10x slower, and the masks do not change."""
    r = _random_refiner(hidden=(32, 32))
    tiny = np.finfo(np.float32).tiny
    weights = [W.copy() for W in r.weights]
    rng = np.random.default_rng(3)
    for W in weights[1:]:
        dead = rng.random(W.shape) < 0.3
        W[dead] = (rng.uniform(1, 1000, dead.sum()) * np.float32(1e-45)).astype(np.float32)
    assert all(((W != 0) & (np.abs(W) < tiny)).any() for W in weights[1:])
    flushed = dataclasses.replace(r, weights=tuple(weights))
    for W in flushed.weights:
        assert not ((W != 0) & (np.abs(W) < tiny)).any()
    F = rng.standard_normal((50, r.weights[0].shape[0])).astype(np.float32)
    # the forward pass with the subnormal weights kept, in float64 (no flushing there)
    x = (F.astype(np.float64) - r.mean) / r.scale
    for i, (W, b) in enumerate(zip(weights, r.biases, strict=True)):
        x = x @ W.astype(np.float64) + b
        x = np.maximum(x, 0) if i < len(weights) - 1 else x
    np.testing.assert_allclose(flushed.predict(F), np.clip(x, 0, 1), atol=1e-5)
    assert np.array_equal(weights[0], flushed.weights[0])  # normal weights are kept as they are


def test_masks_still_sum_to_one_and_stay_finite() -> None:
    rng = np.random.default_rng(2)
    n_freq, n_frames = 129, 50
    raw = rng.random((3, n_freq, n_frames)).astype(np.float32)
    masks = raw / raw.sum(axis=0)
    masks[:, :, :5] = np.array([1.0, 0.0, 0.0], np.float32)[:, None, None]  # first takes all
    V = rng.random((n_freq, n_frames)).astype(np.float32)
    V[:, 10:20] = 0  # silence
    r = _random_refiner()
    before = masks.copy()
    kw = dict(sr=SR, n_fft=256, hop_seconds=64 / SR)
    out = refine.refine_masks(masks.copy(), V, r, weight=0.5, **kw)
    assert np.isfinite(out).all() and out.min() >= 0 and out.max() <= 1
    np.testing.assert_allclose(out.sum(axis=0), 1.0, atol=1e-5)
    assert not np.allclose(out[0], before[0])
    np.testing.assert_array_equal(refine.refine_masks(masks.copy(), V, r, weight=0, **kw), before)
    # the refiner's bands cover the bins up to fmax only: above it the masks are untouched
    low = dataclasses.replace(r, fmax=1000.0)
    out = refine.refine_masks(masks.copy(), V, low, weight=0.5, **kw)
    np.testing.assert_array_equal(out[:, 40:], before[:, 40:])


def test_level_does_not_matter() -> None:
    rng = np.random.default_rng(3)
    V = rng.random((129, 80)).astype(np.float32)
    m = rng.random((2, 129, 80)).astype(np.float32)
    m /= m.sum(axis=0)
    r = _random_refiner()
    kw = dict(sr=SR, n_fft=256, hop_seconds=64 / SR, weight=0.5)
    a = refine.refine_masks(m.copy(), V, r, **kw)
    b = refine.refine_masks(m.copy(), V * 1000, r, **kw)
    np.testing.assert_allclose(a, b, atol=1e-4)


def test_features_do_not_depend_on_the_sample_rate() -> None:
    """White noise at 16 and 48 kHz (the engine's window of the same duration): the same
    log-mel levels, up to the estimate's noise."""
    from nmfsep.spectral import STFTConfig

    rng = np.random.default_rng(4)
    feats = []
    for sr, n_fft in ((16000, 2048), (48000, 6144)):
        x = rng.standard_normal((1, sr * 4)).astype(np.float32)
        config = STFTConfig(n_fft=n_fft, hop_length=n_fft // 4)
        P = np.abs(stft(x, config)[0]) ** 2
        fb, _, _ = refine.mel_filters(sr, n_fft, config.n_freq, N_MELS, 8000.0)
        hop_s = config.hop_length / sr
        F = refine.features(P, np.ones_like(P), fb, context=0, norm_frames=round(5 / hop_s))
        feats.append(F[5:-5, :N_MELS].mean(axis=0))
    np.testing.assert_allclose(feats[0], feats[1], atol=0.15)


def test_model_file_round_trip(model: NMFModel, tmp_path: Path) -> None:
    with_r = dataclasses.replace(model, refiner=_random_refiner())
    path = with_r.save(tmp_path / "m.npz")
    back = load_model(path)
    assert back.refiner is not None
    for Wa, Wb in zip(with_r.refiner.weights, back.refiner.weights, strict=True):  # type: ignore[union-attr]
        np.testing.assert_array_equal(Wa, Wb)
    assert describe_model(back)["refiner"]["n_mels"] == N_MELS
    assert load_model(model.save(tmp_path / "plain.npz")).refiner is None
    assert describe_model(model)["refiner"] is None


def _rewrite(src: Path, dst: Path, *, drop: str = "", meta_edit=None) -> Path:
    with np.load(src, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files if k != drop}
    if meta_edit is not None:
        meta = json.loads(str(arrays["metadata"][()]))
        meta_edit(meta)
        arrays["metadata"] = np.array(json.dumps(meta))
    np.savez(dst, **arrays)
    return dst


def test_broken_refiner_in_a_model_file_is_refused(model: NMFModel, tmp_path: Path) -> None:
    good = dataclasses.replace(model, refiner=_random_refiner()).save(tmp_path / "m.npz")
    with zipfile.ZipFile(good) as zf:
        assert "refiner_W0.npy" in zf.namelist()
    cases = {
        "missing array": dict(drop="refiner_W1"),
        "bad layers": dict(meta_edit=lambda m: m["refiner"].update(layers="2")),
        "too many layers": dict(meta_edit=lambda m: m["refiner"].update(layers=3)),
        "not an object": dict(meta_edit=lambda m: m.update(refiner=[1, 2])),
        "no n_mels": dict(meta_edit=lambda m: m["refiner"].pop("n_mels")),
        "wrong n_mels": dict(meta_edit=lambda m: m["refiner"].update(n_mels=7)),
        "tiny fmax": dict(meta_edit=lambda m: m["refiner"].update(fmax=1e-9)),
        "infinite fmax": dict(meta_edit=lambda m: m["refiner"].update(fmax=float("inf"))),
        "no level span": dict(meta_edit=lambda m: m["refiner"].update(norm_seconds=0)),
    }
    for i, (label, kw) in enumerate(cases.items()):
        bad = _rewrite(good, tmp_path / f"bad{i}.npz", **kw)  # type: ignore[arg-type]
        with pytest.raises(ModelError) as info:
            load_model(bad)
        assert "\n" not in str(info.value), label
        assert str(bad) in str(info.value), label


def _mixtures(n: int, seed: int, seconds: float = 2.0):
    """Tones plus *low-passed* noise: noise the model's hiss bases (above 2 kHz) never saw, so
    the NMF masks leave much of it in the voice; the refiner can learn that."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        s = tones(seconds, seed=int(rng.integers(1 << 30)))
        w = rng.standard_normal(len(s))
        spec = np.fft.rfft(w)
        spec[int(len(spec) * rng.uniform(0.25, 0.5)) :] = 0
        v = np.fft.irfft(spec, n=len(s)) + 0.5 * hiss(seconds, seed=i + 100)
        v *= np.sqrt(np.sum(s**2) / np.sum(v**2)) * 10 ** (-rng.uniform(-5, 5) / 20)
        out.append((s.astype(np.float32), v.astype(np.float32)))
    return out


def test_a_trained_refiner_improves_a_mismatched_model(model: NMFModel) -> None:
    """Trained on mixtures like the test ones, the refiner raises the SDR of the voice on
    held-out mixtures; refine=0 gives exactly the model's own result; the sources still sum
    to the mixture."""
    config = model.stft
    fb, _, _ = refine.mel_filters(SR, config.n_fft, config.n_freq, N_MELS, SR / 2)
    norm = round(refine.NORM_SECONDS / (config.hop_length / SR))
    F, Y = [], []
    for s, v in _mixtures(30, 0):
        mix = (s + v)[np.newaxis]
        mask = separate(mix, SR, model).masks["voice"]
        P = np.abs(stft(mix, config)[0]) ** 2
        F.append(refine.features(P, mask, fb, context=refine.CONTEXT, norm_frames=norm))
        Ps = np.abs(stft(s[np.newaxis], config)[0]) ** 2
        Pn = np.abs(stft(v[np.newaxis], config)[0]) ** 2
        Y.append(refine.targets(Ps, Pn, fb))
    r = refine.fit_refiner(
        np.concatenate(F), np.concatenate(Y), hidden=(32,), max_iter=30, n_mels=N_MELS, fmax=SR / 2
    )
    with_r = dataclasses.replace(model, refiner=r)
    gains = []
    for s, v in _mixtures(3, 1):
        mix = (s + v)[np.newaxis]
        plain = separate(mix, SR, model)
        off = separate(mix, SR, with_r, refine=0)
        on = separate(mix, SR, with_r, refine=0.5)
        np.testing.assert_array_equal(off.sources["voice"], plain.sources["voice"])
        total = sum(on.sources.values())
        np.testing.assert_allclose(total, mix, atol=1e-4)
        sdr = [float(bss_eval(s, x.sources["voice"][0])["sdr"][0]) for x in (plain, on)]
        gains.append(sdr[1] - sdr[0])
    assert min(gains) > 0.5, gains


def test_refine_needs_a_model_with_a_refiner(model: NMFModel) -> None:
    y = tones(1.0)[np.newaxis]
    with pytest.raises(ParameterError, match="refiner"):
        separate(y, SR, model, refine=0.5)
    with pytest.raises(ParameterError, match="refine"):
        separate(y, SR, model, refine=1.5)


def test_a_model_may_recommend_its_refiner(model: NMFModel) -> None:
    meta = {**model.metadata, "separation": {"refine": 0.5}}
    rec = dataclasses.replace(model, refiner=_random_refiner(), metadata=meta)
    y = (tones(1.5) + hiss(1.5))[np.newaxis]
    used = separate(y, SR, rec)
    assert used.settings["refine"] == 0.5
    explicit = separate(y, SR, rec, refine=0.5)
    np.testing.assert_array_equal(used.sources["voice"], explicit.sources["voice"])
    off = separate(y, SR, rec, refine=0)
    assert "refine" not in off.settings


# ------------------------------------------------------------------------------ command line


def _one_error(result: object) -> str:
    lines = [line for line in result.stderr.strip().splitlines() if line]  # type: ignore[attr-defined]
    assert len(lines) == 1, result.stderr  # type: ignore[attr-defined]
    return lines[0]


def test_cli_refine(model: NMFModel, tmp_path: Path) -> None:
    import soundfile as sf
    from typer.testing import CliRunner

    from nmfsep.cli import app

    runner = CliRunner()
    mix = tmp_path / "mix.wav"
    sf.write(mix, tones(1.5) + hiss(1.5), SR, subtype="FLOAT")
    plain = model.save(tmp_path / "plain.npz")
    meta = {**model.metadata, "separation": {"refine": 0.5}}
    refined = dataclasses.replace(model, refiner=_random_refiner(), metadata=meta)
    rpath = refined.save(tmp_path / "refined.npz")
    for value in ("1.5", "-0.1", "nan"):
        bad = runner.invoke(
            app, ["separate", str(mix), "--refine", value, "-o", str(tmp_path / "b")]
        )
        assert bad.exit_code == 2 and "--refine" in _one_error(bad)
    need = runner.invoke(
        app, ["separate", str(mix), "-m", str(plain), "--refine", "0.5", "-o", str(tmp_path / "b")]
    )
    assert need.exit_code == 2 and "refiner" in _one_error(need)
    assert not (tmp_path / "b").exists()
    outs = {}
    for label, extra in (("rec", []), ("off", ["--refine", "0"])):
        out = tmp_path / label
        res = runner.invoke(
            app, ["separate", str(mix), "-m", str(rpath), "-o", str(out), "-q", *extra]
        )
        assert res.exit_code == 0, res.stderr
        outs[label] = sf.read(out / "mix" / "voice.wav")[0]
    assert not np.allclose(outs["rec"], outs["off"])


# ------------------------------------------------------------- the trained path (train --refiner)


def test_the_shipped_trained_path_refiner_loads_with_its_credits() -> None:
    from nmfsep.model import trained_refiner

    r, meta = trained_refiner()
    assert isinstance(r, refine.Refiner)
    assert r.fmax == 8000.0 and r.n_mels == refine.N_MELS and r.context == refine.CONTEXT
    assert len(meta["credits"]) > 100
    assert all(c["license"] and c["credit"] for c in meta["credits"])


def test_refiner_file_round_trip_and_refusals(model: NMFModel, tmp_path: Path) -> None:
    from nmfsep.model import load_refiner, save_refiner

    r = _random_refiner()
    path = save_refiner(tmp_path / "r.npz", r, {"note": "x"})
    back, meta = load_refiner(path)
    assert meta == {"note": "x"}
    for Wa, Wb in zip(r.weights, back.weights, strict=True):
        np.testing.assert_array_equal(Wa, Wb)
    # a model file is not a refiner file and the other way round: one line naming the file
    for loader, wrong in ((load_refiner, model.save(tmp_path / "m.npz")), (load_model, path)):
        with pytest.raises(ModelError) as info:
            loader(wrong)
        assert "\n" not in str(info.value) and str(wrong) in str(info.value)
        assert "not an nmfsep" in str(info.value)
    broken = _rewrite(path, tmp_path / "broken.npz", drop="refiner_b0")
    with pytest.raises(ModelError, match="refiner_b0"):
        load_refiner(broken)


def _train(**kw: object) -> NMFModel:
    from nmfsep.training import train_model

    return train_model(
        {"voice": [tones(3.0, seed=5)], "hiss": [hiss(3.0, seed=6)]},
        sr=SR,
        n_components=6,
        context=3,
        max_iter=40,
        **kw,  # type: ignore[arg-type]
    )


def test_train_with_the_refiner(tmp_path: Path) -> None:
    """``refiner="voice"`` attaches the shipped refiner to that source and the model
    recommends it: the same bases, separations use it, the sources still sum to the mixture,
    and ``refine=0`` is the plain model's result."""
    from nmfsep import defaults

    plain, with_r = _train(refiner=None), _train(refiner="voice")
    for name in plain.bases:
        np.testing.assert_array_equal(plain.bases[name], with_r.bases[name])
    assert with_r.refiner is not None and plain.refiner is None
    assert with_r.metadata["separation"]["refine"] == defaults.TRAINED_REFINE
    assert with_r.metadata["training"]["refiner"]["source"] == "voice"
    assert with_r.metadata["training"]["refiner"]["chosen"] == "given"
    assert len(with_r.metadata["refiner_credits"]) > 100
    back = load_model(with_r.save(tmp_path / "m.npz"))
    y = (tones(2.0, seed=9) + hiss(2.0, seed=10))[np.newaxis]
    used = separate(y, SR, back)
    assert used.settings["refine"] == defaults.TRAINED_REFINE
    np.testing.assert_allclose(sum(used.sources.values()), y, atol=1e-4)
    off = separate(y, SR, back, refine=0)
    np.testing.assert_array_equal(off.sources["voice"], separate(y, SR, plain).sources["voice"])
    assert not np.allclose(used.sources["voice"], off.sources["voice"])


def test_train_refiner_puts_speech_first_and_checks_its_source() -> None:
    from nmfsep.options import TrainOptions
    from nmfsep.training import train_model

    flipped = train_model(
        {"hiss": [hiss(2.0, seed=6)], "voice": [tones(2.0, seed=5)]},
        sr=SR,
        n_components=4,
        max_iter=10,
        refiner="voice",
    )
    assert list(flipped.bases) == ["voice", "hiss"]
    with pytest.raises(ParameterError, match="two sources"):
        train_model({"voice": [tones(1.0)]}, sr=SR, refiner="voice")
    with pytest.raises(ParameterError, match="no source named 'speech'"):
        train_model({"voice": [tones(1.0)], "hiss": [hiss(1.0)]}, sr=SR, refiner="speech")
    for bad in (True, "", 3):
        with pytest.raises(ParameterError, match="refiner"):
            TrainOptions(refiner=bad)  # type: ignore[arg-type]


def test_cli_train_refiner(tmp_path: Path) -> None:
    import soundfile as sf
    from typer.testing import CliRunner

    from nmfsep.cli import app

    runner = CliRunner()
    voice, noise = tmp_path / "voice.wav", tmp_path / "hiss.wav"
    sf.write(voice, tones(3.0, seed=5), SR, subtype="FLOAT")
    sf.write(noise, hiss(3.0, seed=6), SR, subtype="FLOAT")
    out = tmp_path / "m.npz"
    res = runner.invoke(
        app,
        ["train", str(noise), str(voice), "--refiner", "voice", "-k", "6", "-o", str(out), "-q"],
    )
    assert res.exit_code == 0, res.stderr
    info = runner.invoke(app, ["info", str(out), "--json"])
    described = json.loads(info.stdout)
    assert info.exit_code == 0 and described["refiner"]["n_mels"] == refine.N_MELS
    assert described["sources"][0]["name"] == "voice"
    assert described["metadata"]["separation"]["refine"] == 0.5
    lone = tmp_path / "lone.npz"
    cases = (([str(voice)], "voice", "two sources"), ([str(voice), str(noise)], "speech", "speech"))
    for args, name, says in cases:
        bad = runner.invoke(app, ["train", *args, "--refiner", name, "-o", str(lone)])
        assert bad.exit_code == 2 and says in _one_error(bad)
        assert _one_error(bad).startswith("error: --refiner")  # the flag, not the field
        assert not lone.exists()


def test_a_missing_shipped_refiner_fails_before_training(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib.resources

    from nmfsep.training import train_model

    (tmp_path / "data").mkdir()
    monkeypatch.setattr(importlib.resources, "files", lambda name: tmp_path)
    calls = []
    with pytest.raises(ModelError, match="refiner is missing") as info:
        train_model(
            {"voice": [tones(1.0)], "hiss": [hiss(1.0)]},
            sr=SR,
            refiner="voice",
            callback=lambda *a: calls.append(a),
        )
    assert "\n" not in str(info.value) and not calls


def test_train_attaches_the_refiner_to_a_source_named_speech_by_default() -> None:
    from nmfsep.options import TrainOptions
    from nmfsep.training import resolve_refiner

    assert TrainOptions().refiner == "auto" and TrainOptions(refiner="none").refiner is None
    assert resolve_refiner(["train_speech", "train_noise"], "auto") == "train_speech"
    assert resolve_refiner(["noise", "Voice-1"], "auto") == "Voice-1"
    for names in (["a", "b"], ["speech"], ["speech", "voice"], ["speechless", "noise"]):
        assert resolve_refiner(names, "auto") is None, names  # none, alone, two, not a word
    assert resolve_refiner(["a", "b"], "b") == "b" and resolve_refiner(["a", "b"], None) is None
    auto = _train()  # sources "voice" and "hiss"
    assert auto.refiner is not None and list(auto.bases) == ["voice", "hiss"]
    assert auto.metadata["training"]["refiner"] == {
        **auto.metadata["training"]["refiner"],
        "source": "voice",
        "chosen": "by name",
    }
    assert _train(refiner="none").refiner is None


def test_cli_train_refiner_by_default_and_none(tmp_path: Path) -> None:
    import soundfile as sf
    from typer.testing import CliRunner

    from nmfsep.cli import app

    runner = CliRunner()
    speech, noise = tmp_path / "train_speech.wav", tmp_path / "train_noise.wav"
    sf.write(speech, tones(3.0, seed=5), SR, subtype="FLOAT")
    sf.write(noise, hiss(3.0, seed=6), SR, subtype="FLOAT")
    for extra, attached in (([], True), (["--refiner", "none"], False)):
        out = tmp_path / f"m{len(extra)}.npz"
        res = runner.invoke(
            app, ["train", str(noise), str(speech), "-k", "4", "-o", str(out), "-q", *extra]
        )
        assert res.exit_code == 0, res.stderr
        model = load_model(out)
        assert (model.refiner is not None) is attached
        assert next(iter(model.bases)) == ("train_speech" if attached else "train_noise")
