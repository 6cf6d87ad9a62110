"""The harmonic/percussive prior (issue 12, item 4): nmfsep.hpss, training, separation, CLI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from scipy.ndimage import median_filter
from typer.testing import CliRunner

from nmfsep import hpss
from nmfsep.cli import app
from nmfsep.engine import SeparationPlan, Separator
from nmfsep.errors import ModelError, ParameterError
from nmfsep.model import NMFModel, load_model
from nmfsep.options import SeparateOptions, TrainOptions
from nmfsep.separation import separate
from nmfsep.training import train_model

SR = 8000
runner = CliRunner()


def _notes(rng: np.random.Generator, seconds: float) -> np.ndarray:
    """Sustained harmonic notes (1 s each, 7 partials): smooth along time."""
    n = int(seconds * SR)
    y = np.zeros(n)
    for start in range(0, n, SR):
        t = np.arange(min(SR, n - start)) / SR
        f0 = rng.uniform(200.0, 500.0)
        env = np.minimum(1.0, np.minimum(t, t[::-1]) / 0.05)
        y[start : start + t.size] = env * sum(
            np.sin(2 * np.pi * h * f0 * t) / h for h in range(1, 8) if h * f0 < SR / 2 - 200
        )
    return (0.1 * y).astype(np.float32)


def _clicks(rng: np.random.Generator, seconds: float) -> np.ndarray:
    """Decaying broadband noise bursts (25 ms), six a second: smooth along frequency."""
    n, length = int(seconds * SR), 200
    y = np.zeros(n)
    for start in rng.choice(n - length, size=int(seconds * 6), replace=False):
        y[start : start + length] += rng.standard_normal(length) * np.exp(-np.arange(length) / 40)
    return (0.2 * y).astype(np.float32)


@pytest.fixture(scope="module")
def case() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    notes_train, clicks_train = _notes(rng, 6.0), _clicks(rng, 6.0)
    notes, clicks = _notes(rng, 3.0), _clicks(rng, 3.0)
    clicks *= np.float32(0.7 * np.sqrt(np.sum(notes**2) / np.sum(clicks**2)))  # -3 dB
    return {
        "notes_train": notes_train,
        "clicks_train": clicks_train,
        "notes": notes,
        "clicks": clicks,
    }


def _train(case: dict[str, np.ndarray], strength: float) -> NMFModel:
    return train_model(
        {"notes": [case["notes_train"][None]], "clicks": [case["clicks_train"][None]]},
        sr=SR,
        n_components=16,
        hpss_prior=strength,
        random_state=0,
    )


@pytest.fixture(scope="module")
def plain(case: dict[str, np.ndarray]) -> NMFModel:
    return _train(case, 0.0)


@pytest.fixture(scope="module")
def prior(case: dict[str, np.ndarray]) -> NMFModel:
    return _train(case, 3.0)


def _sdr(ref: np.ndarray, est: np.ndarray) -> float:
    return float(10 * np.log10(np.sum(ref**2) / np.sum((ref - est) ** 2)))


# ------------------------------------------------------------------------------ the functions


@pytest.mark.parametrize("shape", [(40, 50), (5, 7), (1, 1), (64, 3)])
def test_percussive_mask_is_median_filtering_hpss(shape: tuple[int, int]) -> None:
    V = np.random.default_rng(1).random(shape).astype(np.float32)
    H = median_filter(V, size=(1, hpss.KERNEL), mode="reflect")
    P = median_filter(V, size=(hpss.KERNEL, 1), mode="reflect")
    expected = P**2 / (P**2 + H**2)
    np.testing.assert_allclose(hpss.percussive_mask(V), expected, atol=1e-6)


def test_percussive_mask_of_silence_has_no_opinion() -> None:
    mask = hpss.percussive_mask(np.zeros((20, 30), np.float32))
    assert mask.dtype == np.float32 and np.all(mask == 0.5)
    tiny = hpss.percussive_mask(np.full((20, 30), 1e-30, np.float32))
    assert np.all(np.isfinite(tiny))


def test_tilt_masks_keeps_the_sum_and_is_neutral_when_shares_agree() -> None:
    rng = np.random.default_rng(2)
    raw = rng.random((3, 10, 12)).astype(np.float32)
    masks = raw / raw.sum(axis=0)
    perc = rng.random((10, 12)).astype(np.float32)
    tilted = hpss.tilt_masks(masks, perc, np.array([0.1, 0.9, 0.5]), strength=2.0)
    np.testing.assert_allclose(tilted.sum(axis=0), 1.0, atol=1e-5)
    # a percussive point goes to the percussive source
    assert np.all((tilted[1] > masks[1]) == (perc > 0.5))
    same = hpss.tilt_masks(masks, perc, np.array([0.4, 0.4, 0.4]), strength=3.0)
    np.testing.assert_allclose(same, masks, atol=1e-6)
    assert hpss.tilt_masks(masks, perc, np.array([0.0, 1.0, 0.5]), strength=0.0) is masks


def test_shares_for_reads_and_checks_the_record() -> None:
    meta = {"hpss_prior": {"percussive_share": {"a": 0.25, "b": 1}}}
    np.testing.assert_allclose(hpss.shares_for(meta, ["a", "b", "residual"]), [0.25, 1.0, 0.5])
    assert hpss.shares_for({}, ["a"]) is None
    for bad in ({"hpss_prior": {}}, {"hpss_prior": {"percussive_share": {"a": 2.0}}},
                {"hpss_prior": {"percussive_share": {"a": "x"}}}):  # fmt: skip
        with pytest.raises(ModelError):
            hpss.shares_for(bad, ["a"])


@pytest.mark.parametrize("value", [-1, 10.5, float("nan"), "strong", True])
def test_options_refuse_bad_strengths(value: object) -> None:
    with pytest.raises(ParameterError, match="hpss_prior"):
        TrainOptions(hpss_prior=value)  # type: ignore[arg-type]
    with pytest.raises(ParameterError, match="hpss_prior"):
        SeparateOptions(hpss_prior=value)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------ separation


def test_training_records_shares_and_recommends_the_strength(
    plain: NMFModel, prior: NMFModel
) -> None:
    shares = prior.metadata["hpss_prior"]["percussive_share"]
    assert shares["notes"] < 0.2 < 0.8 < shares["clicks"]
    assert prior.metadata["separation"]["hpss_prior"] == 3.0
    assert "hpss_prior" not in plain.metadata and "separation" not in plain.metadata
    for name in ("notes", "clicks"):  # the bases are the plain ones
        np.testing.assert_array_equal(prior.bases[name], plain.bases[name])


def test_prior_improves_both_sources(
    case: dict[str, np.ndarray], plain: NMFModel, prior: NMFModel
) -> None:
    mix = case["notes"] + case["clicks"]
    before = separate(mix, SR, plain).sources
    after = separate(mix, SR, prior).sources
    for name in ("notes", "clicks"):
        gain = _sdr(case[name], after[name][0]) - _sdr(case[name], before[name][0])
        assert gain > 1.0, (name, gain)
    total = after["notes"] + after["clicks"]
    np.testing.assert_allclose(total[0], mix, atol=1e-5)


def test_strength_zero_is_the_plain_path(case: dict[str, np.ndarray], prior: NMFModel) -> None:
    mix = case["notes"] + case["clicks"]
    off = separate(mix, SR, prior, hpss_prior=0).sources
    stripped = NMFModel(bases=prior.bases, sr=prior.sr, stft=prior.stft, beta=prior.beta,
                        context=prior.context)  # fmt: skip
    ref = separate(mix, SR, stripped).sources
    for name in ref:
        np.testing.assert_array_equal(off[name], ref[name])


def test_model_without_the_record_separates_as_before(
    tmp_path: Path, case: dict[str, np.ndarray], plain: NMFModel
) -> None:
    path = plain.save(tmp_path / "plain.npz")
    loaded = load_model(path)
    plan = SeparationPlan.create(loaded, sr=SR)
    assert plan.percussive_share is None and plan.extra_frames == plain.context - 1
    assert "hpss_prior" not in plan.settings()
    mix = case["notes"] + case["clicks"]
    a, b = separate(mix, SR, loaded).sources, separate(mix, SR, plain).sources
    for name in a:
        np.testing.assert_array_equal(a[name], b[name])
    with pytest.raises(ParameterError, match="percussive share"):
        SeparationPlan.create(loaded, sr=SR, options=SeparateOptions(hpss_prior=1.0))


def test_saved_model_keeps_the_prior(
    tmp_path: Path, case: dict[str, np.ndarray], prior: NMFModel
) -> None:
    loaded = load_model(prior.save(tmp_path / "prior.npz"))
    plan = SeparationPlan.create(loaded, sr=SR)
    assert plan.settings()["hpss_prior"] == 3.0
    np.testing.assert_allclose(plan.percussive_share, list(
        prior.metadata["hpss_prior"]["percussive_share"].values()), atol=1e-6)  # fmt: skip
    mix = case["notes"] + case["clicks"]
    a, b = separate(mix, SR, loaded).sources, separate(mix, SR, prior).sources
    for name in a:
        np.testing.assert_array_equal(a[name], b[name])


def test_streaming_with_the_prior_is_exact(case: dict[str, np.ndarray], prior: NMFModel) -> None:
    mix = case["notes"] + case["clicks"]
    whole = separate(mix, SR, prior).sources
    sep = Separator(prior, sr=SR, block_seconds=0.5)  # blocks shorter than the median filter
    parts = [sep.process(mix[i : i + 777]) for i in range(0, mix.size, 777)]
    parts.append(sep.flush())
    for name in whole:
        streamed = np.concatenate([p[name] for p in parts])
        np.testing.assert_allclose(streamed, whole[name][0], atol=2e-6)


def test_silence_gives_no_nan(prior: NMFModel) -> None:
    silent = np.zeros(SR * 2, np.float32)
    out = separate(silent, SR, prior).sources
    assert all(np.all(y == 0) for y in out.values())
    gap = np.concatenate([silent, _clicks(np.random.default_rng(3), 1.0), silent])
    out = separate(gap, SR, prior).sources
    assert all(np.all(np.isfinite(y)) for y in out.values())
    np.testing.assert_allclose(out["notes"][0] + out["clicks"][0], gap, atol=1e-5)


def test_free_components_with_the_prior(case: dict[str, np.ndarray], prior: NMFModel) -> None:
    mix = case["notes"] + case["clicks"]
    res = separate(mix, SR, prior, free_components=2)
    assert set(res.sources) == {"notes", "clicks", "residual"}
    total = sum(y[0] for y in res.sources.values())
    np.testing.assert_allclose(total, mix, atol=1e-5)


# ------------------------------------------------------------------------------ command line


@pytest.fixture(scope="module")
def files(case: dict[str, np.ndarray], tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("hpss")
    sf.write(d / "notes.wav", case["notes_train"], SR, subtype="FLOAT")
    sf.write(d / "clicks.wav", case["clicks_train"], SR, subtype="FLOAT")
    sf.write(d / "mix.wav", case["notes"] + case["clicks"], SR, subtype="FLOAT")
    return d


def _one_error(result: object) -> str:
    stderr = result.stderr  # type: ignore[attr-defined]
    lines = [line for line in stderr.strip().splitlines() if line]
    assert len(lines) == 1, stderr
    return lines[0]


def test_cli_train_and_separate_with_the_prior(files: Path) -> None:
    model = files / "m.npz"
    result = runner.invoke(
        app,
        ["train", f"notes={files / 'notes.wav'}", f"clicks={files / 'clicks.wav'}", "-k", "8",
         "--hpss-prior", "2", "-o", str(model), "-q"],
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert load_model(model).metadata["separation"] == {"hpss_prior": 2.0}
    out = files / "out"
    result = runner.invoke(
        app, ["separate", str(files / "mix.wav"), "-m", str(model), "-o", str(out), "-q", "-v"]
    )
    assert result.exit_code == 0, result.stderr
    assert (out / "mix" / "notes.wav").is_file()
    off = runner.invoke(
        app, ["separate", str(files / "mix.wav"), "-m", str(model), "-o", str(files / "off"),
              "-q", "--hpss-prior", "0"],
    )  # fmt: skip
    assert off.exit_code == 0, off.stderr
    a, _ = sf.read(out / "mix" / "notes.wav")
    b, _ = sf.read(files / "off" / "mix" / "notes.wav")
    assert not np.allclose(a, b)


@pytest.mark.parametrize("value", ["-1", "11", "nan", "inf"])
def test_cli_bad_strengths_exit_2_with_one_line(files: Path, value: str) -> None:
    train = runner.invoke(
        app, ["train", str(files / "notes.wav"), "--hpss-prior", value, "-o",
              str(files / "bad.npz")],
    )  # fmt: skip
    assert train.exit_code == 2
    assert "--hpss-prior" in _one_error(train)
    sep = runner.invoke(
        app, ["separate", str(files / "mix.wav"), "--hpss-prior", value, "-o",
              str(files / "bad")],
    )  # fmt: skip
    assert sep.exit_code == 2
    assert "--hpss-prior" in _one_error(sep)
    assert not (files / "bad.npz").exists() and not (files / "bad").exists()


def test_cli_not_a_number_is_a_usage_error(files: Path) -> None:
    # typer's own parse error (its boxed usage message, as for every numeric option)
    result = runner.invoke(app, ["separate", str(files / "mix.wav"), "--hpss-prior", "much"])
    assert result.exit_code == 2 and "--hpss-prior" in result.stderr


def test_cli_prior_needs_a_model_that_records_it(files: Path) -> None:
    result = runner.invoke(
        app, ["separate", str(files / "mix.wav"), "--hpss-prior", "1", "-o", str(files / "x")]
    )
    assert result.exit_code == 2
    assert "trained with --hpss-prior" in _one_error(result)
    assert not (files / "x").exists()
