"""The temporal-continuity option end to end: SeparateOptions, the engine, ``separate
--continuity`` (small synthetic signals; the numerics are in tests/test_nmf_continuity.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from _signals import SR, hiss, tones
from typer.testing import CliRunner

from nmfsep.cli import app
from nmfsep.engine import SeparationPlan, Separator
from nmfsep.errors import ParameterError
from nmfsep.options import SeparateOptions
from nmfsep.separation import separate, train_model
from nmfsep.spectral import STFTConfig

runner = CliRunner()


@pytest.fixture(scope="module")
def model():
    return train_model(
        {"speech": [tones(2.0, seed=1)], "noise": [hiss(2.0, seed=2)]},
        sr=SR,
        n_components=6,
        context=3,
        stft_config=STFTConfig(n_fft=256, hop_length=64),
        max_iter=40,
    )


def mixture() -> np.ndarray:
    return (tones(1.5, seed=3) + hiss(1.5, seed=4)).astype(np.float32)


def roughness(H: np.ndarray) -> float:
    S = np.sum(H**2, axis=1)
    keep = S > 0
    return float(np.mean(H.shape[1] * np.sum(np.diff(H, axis=1) ** 2, 1)[keep] / S[keep]))


def test_options_resolve_model_recommendation_and_default():
    assert SeparateOptions().resolved().continuity == 0.0
    rec = {"continuity": 0.3, "continuity_source": "noise"}
    used = SeparateOptions().resolved(rec)
    assert (used.continuity, used.continuity_source) == (0.3, "noise")
    own = SeparateOptions(continuity=1.0).resolved(rec)  # the user's value wins, on every basis
    assert (own.continuity, own.continuity_source) == (1.0, None)


@pytest.mark.parametrize("bad", [-0.5, float("nan"), float("inf"), "x", True])
def test_bad_continuity_is_the_parameter_error(bad):
    with pytest.raises(ParameterError, match="continuity must be"):
        SeparateOptions(continuity=bad)
    with pytest.raises(ParameterError, match="continuity_source must be a source name"):
        SeparateOptions(continuity=1.0, continuity_source=3)  # type: ignore[arg-type]


def test_unknown_continuity_source_refused(model):
    with pytest.raises(ParameterError, match="continuity_source 'drums' is not a source"):
        SeparationPlan.create(
            model, sr=SR, options=SeparateOptions(continuity=1.0, continuity_source="drums")
        )


def test_engine_smooths_the_activations_and_keeps_the_sum(model):
    from nmfsep.engine import fit_masks

    y = mixture()
    plans = {
        lam: SeparationPlan.create(model, sr=SR, options=SeparateOptions(continuity=lam))
        for lam in (0.0, 1.0)
    }
    V = np.abs(np.random.default_rng(5).standard_normal((129, 60))).astype(np.float32) + 0.1
    H0 = fit_masks(plans[0.0], V, None)[1].H
    H1 = fit_masks(plans[1.0], V, None)[1].H
    assert roughness(H1) < 0.8 * roughness(H0)
    res = separate(y, SR, model, continuity=1.0, continuity_source="noise")
    total = sum(res.sources.values())
    np.testing.assert_allclose(total[0], y, atol=1e-5)
    assert res.settings["continuity"] == 1.0 and res.settings["continuity_source"] == "noise"
    for s in res.sources.values():
        assert np.isfinite(s).all()


def test_silent_input_with_continuity(model):
    for beta in (0.0, 0.5, 1.0, 2.0):
        res = separate(np.zeros(SR, np.float32), SR, model, continuity=2.0, beta=beta)
        for s in res.sources.values():
            assert np.isfinite(s).all() and not s.any()


def test_chunking_does_not_change_the_result_with_continuity(model):
    """Blocks are cut at fixed frame positions, so continuity (inside each block) gives the
    same output for any chunking of the input."""
    y = mixture()
    whole = separate(y, SR, model, continuity=1.0, block_seconds=0.5).sources
    sep = Separator(model, sr=SR, continuity=1.0, block_seconds=0.5)
    parts = [sep.process(y[i : i + 777]) for i in range(0, y.size, 777)] + [sep.flush()]
    for name, ref in whole.items():
        got = np.concatenate([p[name] for p in parts])
        np.testing.assert_allclose(got, ref[0], atol=1e-6)


def test_cli_separate_continuity(tmp_path: Path, model):
    mix = tmp_path / "mix.wav"
    sf.write(mix, mixture(), SR)
    model_path = tmp_path / "m.npz"
    model.save(model_path)
    out = tmp_path / "out"
    args = ["separate", str(mix), "-m", str(model_path), "-o", str(out), "-q"]
    result = runner.invoke(app, [*args, "--continuity", "0.5", "--continuity-source", "noise"])
    assert result.exit_code == 0, result.output
    assert (out / "mix" / "speech.wav").is_file() and (out / "mix" / "noise.wav").is_file()
    for bad in (["--continuity", "-1"], ["--continuity", "nan"],
                ["--continuity", "1", "--continuity-source", "drums"]):  # fmt: skip
        refused = runner.invoke(app, [*args, "--overwrite", *bad])
        assert refused.exit_code == 2, (bad, refused.output)
        lines = refused.stderr.strip().splitlines()
        assert len(lines) == 1 and "continuity" in lines[0], (bad, refused.stderr)
    helped = runner.invoke(app, ["separate", "--help"], env={"COLUMNS": "200"})
    assert "Virtanen" in helped.output
