"""End-to-end tests of the command line: train, separate, info, batches, errors, exit codes."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from nmfsep.cli import app

SR = 8000
runner = CliRunner()


def tone_source(seconds: float, seed: int) -> np.ndarray:
    """A 'voice': harmonic tones below 1 kHz with a gliding pitch, syllable-like envelope."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    f0 = 150 + 40 * np.sin(2 * np.pi * 0.7 * t + rng.uniform(0, 6))
    phase = 2 * np.pi * np.cumsum(f0) / SR
    y = sum(np.sin(h * phase) / h for h in range(1, 6))
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 3 * t + rng.uniform(0, 6)) ** 2
    return (0.1 * y * envelope).astype(np.float32)


def noise_source(seconds: float, seed: int) -> np.ndarray:
    """A 'noise': white noise high-passed above 2 kHz."""
    rng = np.random.default_rng(seed)
    n = rng.standard_normal(int(seconds * SR))
    spectrum = np.fft.rfft(n)
    spectrum[: int(len(spectrum) * 2000 / (SR / 2))] = 0
    return (0.05 * np.fft.irfft(spectrum, n=len(n))).astype(np.float32)


@pytest.fixture(scope="module")
def audio_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("audio")
    sf.write(d / "speech.wav", tone_source(4.0, 1), SR, subtype="FLOAT")
    sf.write(d / "noise.wav", noise_source(4.0, 2), SR, subtype="FLOAT")
    speech, noise = tone_source(2.0, 3), noise_source(2.0, 4)
    sf.write(d / "clean.wav", speech, SR, subtype="FLOAT")
    sf.write(d / "mix.wav", speech + noise, SR, subtype="FLOAT")
    stereo = np.stack([speech + noise, 0.5 * speech + noise], axis=1)
    sf.write(d / "stereo.wav", stereo, SR, subtype="FLOAT")
    return d


@pytest.fixture(scope="module")
def model_path(audio_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("model") / "model.npz"
    result = runner.invoke(
        app,
        [
            "train",
            str(audio_dir / "speech.wav"),
            str(audio_dir / "noise.wav"),
            "-o",
            str(out),
            "-k",
            "6",
            "--n-fft",
            "256",
            "--max-iter",
            "60",
            "--quiet",
        ],
    )
    assert result.exit_code == 0, result.output
    return out


def _sdr(ref: np.ndarray, est: np.ndarray) -> float:
    return float(10 * np.log10(np.sum(ref**2) / np.sum((ref - est) ** 2)))


def test_train_writes_a_model_that_info_describes(model_path: Path) -> None:
    result = runner.invoke(app, ["info", str(model_path), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert [s["name"] for s in summary["sources"]] == ["speech", "noise"]
    assert all(s["n_components"] == 6 for s in summary["sources"])
    assert summary["sr"] == SR


def test_separate_writes_one_file_per_source_that_sum_to_the_mix(
    audio_dir: Path, model_path: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    result = runner.invoke(
        app, ["separate", str(audio_dir / "mix.wav"), "-m", str(model_path), "-o", str(out)]
    )
    assert result.exit_code == 0, result.output
    speech, sr = sf.read(out / "mix" / "speech.wav", dtype="float32")
    noise, _ = sf.read(out / "mix" / "noise.wav", dtype="float32")
    mix, _ = sf.read(audio_dir / "mix.wav", dtype="float32")
    clean, _ = sf.read(audio_dir / "clean.wav", dtype="float32")
    assert sr == SR and speech.shape == mix.shape == noise.shape
    np.testing.assert_allclose(speech + noise, mix, atol=1e-4)
    # The two synthetic sources occupy different bands: separation must clearly help.
    assert _sdr(clean, speech) > _sdr(clean, mix) + 6.0


def test_separate_keeps_channels_and_mono_option(
    audio_dir: Path, model_path: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    args = ["separate", str(audio_dir / "stereo.wav"), "-m", str(model_path), "-o", str(out)]
    result = runner.invoke(app, [*args, "--json", "-q"])
    assert result.exit_code == 0, result.output
    speech, _ = sf.read(out / "stereo" / "speech.wav")
    noise, _ = sf.read(out / "stereo" / "noise.wav")
    mix, _ = sf.read(audio_dir / "stereo.wav")
    assert speech.shape == mix.shape == (2 * SR, 2)
    np.testing.assert_allclose(speech + noise, mix, atol=1e-4)


def test_json_summary_and_skip_then_overwrite(
    audio_dir: Path, model_path: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    args = ["separate", str(audio_dir / "mix.wav"), "-m", str(model_path), "-o", str(out), "--json"]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    summary = json.loads(first.stdout)
    assert summary["ok"] is True and summary["summary"]["ok"] == 1
    record = summary["files"][0]
    assert record["status"] == "ok"
    assert set(record["outputs"]) == {"speech", "noise"}
    stamp = os.stat(record["outputs"]["speech"]).st_mtime_ns

    second = runner.invoke(app, args)
    assert second.exit_code == 0
    assert json.loads(second.stdout)["files"][0]["status"] == "skipped"
    assert os.stat(record["outputs"]["speech"]).st_mtime_ns == stamp

    third = runner.invoke(app, [*args, "--overwrite"])
    assert json.loads(third.stdout)["files"][0]["status"] == "ok"


def test_one_bad_input_does_not_stop_the_batch(
    audio_dir: Path, model_path: Path, tmp_path: Path
) -> None:
    bad = tmp_path / "bad.wav"
    bad.write_text("this is not audio")
    out = tmp_path / "out"
    result = runner.invoke(
        app,
        [
            "separate",
            str(bad),
            str(tmp_path / "missing.wav"),
            str(audio_dir / "mix.wav"),
            "-m",
            str(model_path),
            "-o",
            str(out),
            "--json",
        ],
    )
    assert result.exit_code == 1
    summary = json.loads(result.stdout)
    statuses = {Path(r["input"]).name: r["status"] for r in summary["files"]}
    assert statuses == {"bad.wav": "error", "missing.wav": "error", "mix.wav": "ok"}
    assert (out / "mix" / "speech.wav").is_file()
    assert not (out / "bad").exists()
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 2 and all("Traceback" not in e for e in errors)
    assert any("missing.wav" in e and "no such file" in e for e in errors)


def test_template_escaping_outdir_is_refused(
    audio_dir: Path, model_path: Path, tmp_path: Path
) -> None:
    for template in ("../{source}.{ext}", "/tmp/{source}.{ext}", "{track}/../../{source}.{ext}"):
        result = runner.invoke(
            app,
            [
                "separate",
                str(audio_dir / "mix.wav"),
                "-m",
                str(model_path),
                "-o",
                str(tmp_path / "out"),
                "--filename",
                template,
            ],
        )
        assert result.exit_code != 0, template
        assert "error:" in result.stderr
    assert not list(tmp_path.glob("*.wav"))


def test_template_without_source_is_a_usage_error(audio_dir: Path, model_path: Path) -> None:
    result = runner.invoke(
        app,
        [
            "separate",
            str(audio_dir / "mix.wav"),
            "-m",
            str(model_path),
            "--filename",
            "{track}.wav",
        ],
    )
    assert result.exit_code == 2
    assert "{source}" in result.stderr


def test_files_from_stdin_and_custom_template(
    audio_dir: Path, model_path: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    result = runner.invoke(
        app,
        [
            "separate",
            "--files-from",
            "-",
            "-m",
            str(model_path),
            "-o",
            str(out),
            "--filename",
            "{source}/{track}.{ext}",
            "--format",
            "flac",
        ],
        input=f"{audio_dir / 'mix.wav'}\n\n# a comment\n",
    )
    assert result.exit_code == 0, result.output
    assert (out / "speech" / "mix.flac").is_file() and (out / "noise" / "mix.flac").is_file()


def test_semi_supervised_with_one_source_model(audio_dir: Path, tmp_path: Path) -> None:
    model = tmp_path / "speech.npz"
    trained = runner.invoke(
        app,
        [
            "train",
            str(audio_dir / "speech.wav"),
            "-o",
            str(model),
            "-k",
            "6",
            "--n-fft",
            "256",
            "-q",
        ],
    )
    assert trained.exit_code == 0, trained.output
    alone = runner.invoke(app, ["separate", str(audio_dir / "mix.wav"), "-m", str(model)])
    assert alone.exit_code == 2 and "--free-components" in alone.stderr
    out = tmp_path / "out"
    result = runner.invoke(
        app,
        [
            "separate",
            str(audio_dir / "mix.wav"),
            "-m",
            str(model),
            "--free-components",
            "6",
            "-o",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    speech, _ = sf.read(out / "mix" / "speech.wav")
    residual, _ = sf.read(out / "mix" / "residual.wav")
    mix, _ = sf.read(audio_dir / "mix.wav")
    clean, _ = sf.read(audio_dir / "clean.wav")
    np.testing.assert_allclose(speech + residual, mix, atol=1e-4)
    assert _sdr(clean, speech) > _sdr(clean, mix) + 3.0


def test_train_named_sources_and_errors(audio_dir: Path, tmp_path: Path) -> None:
    model = tmp_path / "m.npz"
    ok = runner.invoke(
        app,
        [
            "train",
            f"voice={audio_dir / 'speech.wav'},{audio_dir / 'clean.wav'}",
            f"hiss={audio_dir / 'noise.wav'}",
            "-o",
            str(model),
            "-k",
            "4",
            "--n-fft",
            "256",
            "--json",
            "-q",
        ],
    )
    assert ok.exit_code == 0, ok.output
    assert [s["name"] for s in json.loads(ok.stdout)["sources"]] == ["voice", "hiss"]

    missing = runner.invoke(app, ["train", str(tmp_path / "nope.wav"), "-o", str(model)])
    assert missing.exit_code == 1
    assert missing.stderr.strip().count("\n") == 0 and "nope.wav" in missing.stderr

    twice = runner.invoke(
        app, ["train", str(audio_dir / "speech.wav"), str(audio_dir / "speech.wav")]
    )
    assert twice.exit_code == 2 and "named twice" in twice.stderr


@pytest.mark.parametrize("name", ["a:b", "x y", "a\\b", "a/b", ".x", "s" * 65, "é\u0301x"])
def test_train_refuses_a_bad_source_name_before_reading(
    name: str, audio_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every name the model would refuse after training is a usage error up front (``a:b``,
    ``x y`` were refused only after the audio was read, with exit 1)."""
    from nmfsep import audio

    monkeypatch.setattr(audio, "load_audio", lambda *a, **k: pytest.fail("audio was read"))
    r = runner.invoke(app, ["train", f"{name}={audio_dir / 'speech.wav'}", "-o", "m.npz"])
    assert r.exit_code == 2, r.output
    assert r.stderr.startswith("error: bad source name ") and r.stderr.count("\n") == 1
    # a name taken from a file's stem says how to give another
    odd = tmp_path / "my speech.wav"
    odd.write_bytes((audio_dir / "speech.wav").read_bytes())
    r = runner.invoke(app, ["train", str(odd), "-o", str(tmp_path / "m.npz")])
    assert r.exit_code == 2 and f"name it with NAME={odd}" in r.stderr


def test_bad_model_file_is_one_line_error(audio_dir: Path, tmp_path: Path) -> None:
    fake = tmp_path / "fake.npz"
    fake.write_bytes(b"not a model at all")
    result = runner.invoke(app, ["separate", str(audio_dir / "mix.wav"), "-m", str(fake)])
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and "fake.npz" in lines[0]


def test_version_and_help() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.stdout.startswith("nmfsep ")
    for command in ("train", "separate", "cluster", "evaluate", "info"):
        helped = runner.invoke(app, [command, "--help"])
        assert helped.exit_code == 0, command
        assert "Example" in helped.stdout, command


def test_help_does_not_import_heavy_modules() -> None:
    code = (
        "import sys\n"
        "from nmfsep.cli import app\n"
        "from typer.testing import CliRunner\n"
        "CliRunner().invoke(app, ['separate', '--help'])\n"
        "heavy = [m for m in ('librosa', 'sklearn', 'numpy', 'soundfile') if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_python_dash_m_runs_the_cli(audio_dir: Path, model_path: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "nmfsep",
            "separate",
            str(audio_dir / "mix.wav"),
            str(tmp_path / "missing.wav"),
            "-m",
            str(model_path),
            "-o",
            str(out),
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert "missing.wav: no such file" in proc.stderr
    assert (out / "mix" / "speech.wav").is_file()


def test_channels_mono_downmixes(audio_dir: Path, model_path: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    args = ["separate", str(audio_dir / "stereo.wav"), "-m", str(model_path), "-o", str(out)]
    result = runner.invoke(app, [*args, "--channels", "mono", "-q"])
    assert result.exit_code == 0, result.output
    speech, _ = sf.read(out / "stereo" / "speech.wav")
    noise, _ = sf.read(out / "stereo" / "noise.wav")
    mix, _ = sf.read(audio_dir / "stereo.wav")
    assert speech.ndim == 1 and speech.shape[0] == mix.shape[0]
    np.testing.assert_allclose(speech + noise, mix.mean(axis=1), atol=1e-4)
    bad = runner.invoke(app, [*args, "--channels", "left"])
    assert bad.exit_code == 2 and "--channels" in bad.stderr


def _tones_and_band_noise(seconds: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Switched harmonic tones (220/440/660 Hz) and 2.5-3.5 kHz noise that ducks under them."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    t = np.arange(n) / SR
    env = (np.sin(2 * np.pi * 1.5 * t) > 0).astype(float)
    low = env * sum(np.sin(2 * np.pi * f * t) / k for k, f in enumerate((220, 440, 660), 1))
    spec = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1 / SR)
    spec[(freqs < 2500) | (freqs > 3500)] = 0
    high = np.fft.irfft(spec, n) * (1 - 0.7 * env)
    high *= 0.5 * np.std(low) / np.std(high)
    return (0.1 * low).astype(np.float32), (0.1 * high).astype(np.float32)


def test_cluster_writes_sources_and_a_reusable_model(tmp_path: Path) -> None:
    low, high = _tones_and_band_noise(2.0, 0)
    mix = low + high
    src = tmp_path / "mix.wav"
    sf.write(src, mix, SR, subtype="FLOAT")
    out, model = tmp_path / "out", tmp_path / "clustered.npz"
    args = ["cluster", str(src), "-n", "2", "-k", "8", "-o", str(out)]
    result = runner.invoke(app, [*args, "--save-model", str(model), "--json", "-q"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["files"][0]["status"] == "ok"
    s1, _ = sf.read(out / "mix" / "source1.wav")
    s2, _ = sf.read(out / "mix" / "source2.wav")
    np.testing.assert_allclose(s1 + s2, mix, atol=1e-4)
    # source1 has the lower spectral centroid: the tones, recovered far above the mix's SDR.
    assert _sdr(low, s1) > _sdr(low, mix) + 10.0
    # Same seed, same output.
    again = tmp_path / "again"
    rerun = runner.invoke(app, [*args[:-1], str(again), "-q"])
    assert rerun.exit_code == 0
    np.testing.assert_array_equal(sf.read(again / "mix" / "source1.wav")[0], s1)
    # The saved model separates another recording of the same sources with `separate -m`.
    low2, high2 = _tones_and_band_noise(2.0, 1)
    other = tmp_path / "other.wav"
    sf.write(other, low2 + high2, SR, subtype="FLOAT")
    reuse = runner.invoke(app, ["separate", str(other), "-m", str(model), "-o", str(out), "-q"])
    assert reuse.exit_code == 0, reuse.output
    est, _ = sf.read(out / "other" / "source1.wav")
    assert _sdr(low2, est) > _sdr(low2, low2 + high2) + 10.0
    # Bad input is handled as for separate.
    missing = runner.invoke(app, ["cluster", str(tmp_path / "nope.wav"), "-o", str(out)])
    assert missing.exit_code == 1 and "nope.wav: no such file" in missing.stderr


@pytest.mark.parametrize("features", ["mfcc0-or-mod", "modulation"])
def test_cluster_features_choice_is_accepted_and_recorded(tmp_path: Path, features: str) -> None:
    """Every grouping of ``--features`` reaches the library (recorded in --json) and the
    sources still sum to the mixture; an unknown one is a usage error naming the choices."""
    low, high = _tones_and_band_noise(2.0, 0)
    src = tmp_path / "mix.wav"
    sf.write(src, low + high, SR, subtype="FLOAT")
    out = tmp_path / "out"
    args = ["cluster", str(src), "-n", "2", "-k", "8", "-o", str(out), "--json", "-q"]
    result = runner.invoke(app, [*args, "--features", features])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["files"][0]["settings"]["features"] == features
    s1, _ = sf.read(out / "mix" / "source1.wav")
    s2, _ = sf.read(out / "mix" / "source2.wav")
    np.testing.assert_allclose(s1 + s2, low + high, atol=1e-4)
    bad = runner.invoke(app, [*args, "--features", "nonsense", "--overwrite"])
    assert bad.exit_code == 2 and "mfcc0-or-mod" in bad.stderr


def test_evaluate_json_csv_permutation_and_oracle(audio_dir: Path, tmp_path: Path) -> None:
    from nmfsep.metrics import si_sdr

    clean, _ = sf.read(audio_dir / "clean.wav")
    mix, _ = sf.read(audio_dir / "mix.wav")
    est = clean + 0.1 * (mix - clean)
    refs = tmp_path / "refs"
    refs.mkdir()
    sf.write(refs / "speech.wav", clean, SR, subtype="FLOAT")
    sf.write(refs / "noise.wav", mix - clean, SR, subtype="FLOAT")
    ests = tmp_path / "ests"
    ests.mkdir()
    # Named unlike the references: the permutation decides (a, b are noise, speech).
    sf.write(ests / "a.wav", (mix - clean) + 0.1 * clean, SR, subtype="FLOAT")
    sf.write(ests / "b.wav", est, SR, subtype="FLOAT")
    result = runner.invoke(
        app,
        [
            "evaluate",
            str(ests / "a.wav"),
            str(ests / "b.wav"),
            "--reference",
            str(refs / "speech.wav"),
            "--reference",
            str(refs / "noise.wav"),
            "--mixture",
            str(audio_dir / "mix.wav"),
            "--oracle",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    rows = {r["name"]: r for r in json.loads(result.stdout)["sources"]}
    assert rows["speech"]["estimate"].endswith("b.wav")
    assert rows["noise"]["estimate"].endswith("a.wav")
    expected = float(si_sdr(clean, est))
    assert rows["speech"]["si_sdr"] == pytest.approx(expected, abs=1e-3)
    # by hand: est - clean = 0.1 * noise, orthogonal-ish; improvement over the mix is positive
    assert rows["speech"]["si_sdr_improvement"] > 10.0
    assert rows["speech"]["oracle_sdr"] is not None
    csv_run = runner.invoke(
        app,
        ["evaluate", str(ests / "b.wav"), "--reference", str(refs / "speech.wav"), "--csv"],
    )
    assert csv_run.exit_code == 0, csv_run.output
    header, row = csv_run.stdout.strip().splitlines()
    assert header.startswith("reference,estimate,sdr") and row.split(",")[1].endswith("b.wav")
    # --reference-dir matches by file name.
    sf.write(ests / "speech.wav", est, SR, subtype="FLOAT")
    by_dir = runner.invoke(
        app, ["evaluate", str(ests / "speech.wav"), "--reference-dir", str(refs), "--json"]
    )
    assert by_dir.exit_code == 0, by_dir.output
    (only,) = json.loads(by_dir.stdout)["sources"]
    assert only["name"] == "speech" and only["si_sdr"] == pytest.approx(expected, abs=1e-3)
    none = runner.invoke(app, ["evaluate", str(ests / "b.wav")])
    assert none.exit_code == 2 and "--reference" in none.stderr


def test_plots_are_written(audio_dir: Path, model_path: Path, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    out = tmp_path / "out"
    result = runner.invoke(
        app,
        ["separate", str(audio_dir / "mix.wav"), "-m", str(model_path), "-o", str(out), "--plot"],
    )
    assert result.exit_code == 0, result.output
    png = out / "mix" / "separation.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    info_png = tmp_path / "bases.png"
    shown = runner.invoke(app, ["info", str(model_path), "--plot", str(info_png)])
    assert shown.exit_code == 0 and info_png.read_bytes()[:4] == b"\x89PNG"
    # into the same folder, cluster would replace separate's picture: refused, then elsewhere
    args = ["cluster", str(audio_dir / "mix.wav"), "-k", "6", "--plot", "-q"]
    clustered = runner.invoke(app, [*args, "-o", str(out)])
    assert clustered.exit_code == 1 and "separation.png exists" in clustered.stderr
    clustered = runner.invoke(app, [*args, "-o", str(tmp_path / "clustered")])
    assert clustered.exit_code == 0, clustered.output
    assert (tmp_path / "clustered" / "mix" / "bases.png").is_file()


def test_plot_without_matplotlib_names_the_extra(
    audio_dir: Path, model_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "matplotlib" else real(name)
    )
    result = runner.invoke(
        app, ["separate", str(audio_dir / "mix.wav"), "-m", str(model_path), "--plot"]
    )
    assert result.exit_code == 2
    assert "pip install 'nmfsep[plot]'" in result.stderr


def test_analysis_bands_flag(audio_dir: Path, model_path: Path, tmp_path: Path) -> None:
    """--analysis-bands 0 infers on every bin; the default uses the bands."""
    runs = {}
    for flag in ([], ["--analysis-bands", "0"], ["--analysis-bands", "32"]):
        out = tmp_path / ("o" + "".join(flag))
        result = runner.invoke(
            app,
            ["separate", str(audio_dir / "mix.wav"), "-m", str(model_path), "-o", str(out),
             "--json", "-q", *flag],
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        runs[" ".join(flag)] = json.loads(result.stdout)["files"][0]["settings"]
    assert runs["--analysis-bands 0"]["analysis_bands"] is None
    assert runs["--analysis-bands 32"]["analysis_bands"] == 32
    # 1..7 bands make no grid: a usage error naming the flag, nothing written
    out = tmp_path / "bad"
    result = runner.invoke(
        app,
        ["separate", str(audio_dir / "mix.wav"), "-m", str(model_path), "-o", str(out),
         "--analysis-bands", "3"],
    )  # fmt: skip
    assert result.exit_code == 2
    assert "--analysis-bands" in result.stderr and not out.exists()


def test_train_exemplars_option(audio_dir: Path, tmp_path: Path) -> None:
    from nmfsep.model import load_model

    out = tmp_path / "ex.npz"
    args = ["train", str(audio_dir / "speech.wav"), str(audio_dir / "noise.wav"), "-o", str(out)]
    args += ["-k", "4", "--n-fft", "256", "--max-iter", "20", "--quiet"]
    result = runner.invoke(app, [*args, "--exemplars", "7"])
    assert result.exit_code == 0, result.output
    model = load_model(out)
    assert [w.shape[1] for w in model.bases.values()] == [11, 11]
    assert model.metadata["training"]["exemplars"] == 7
    bad = runner.invoke(app, [*args, "--overwrite", "--exemplars", "-3"])
    assert bad.exit_code == 2 and "--exemplars" in bad.stderr
    assert load_model(out).metadata["training"]["exemplars"] == 7  # the model is kept


def test_train_warns_when_a_source_has_too_little_audio(audio_dir: Path, tmp_path: Path) -> None:
    """A source with fewer audible frames than bases (or exemplars asked) trains, and says so
    (with --quiet too)."""
    import soundfile as sf

    y, sr = sf.read(audio_dir / "speech.wav", dtype="float32")
    short = tmp_path / "short.wav"
    sf.write(short, y[sr : sr + 300], sr)  # a few frames of voice
    out = tmp_path / "m.npz"
    args = ["train", f"speech={short}", f"noise={audio_dir / 'noise.wav'}", "-o", str(out)]
    result = runner.invoke(app, [*args, "-k", "8", "--n-fft", "256", "--exemplars", "50", "-q"])
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert any(w.startswith("warning: speech: only ") and "for 8 bases" in w for w in warnings)
    assert any(w.startswith("warning: speech: ") and "not 50" in w for w in warnings)
    assert not any("noise: only" in w for w in warnings), warnings


def test_a_finished_run_no_longer_turns_sigterm_into_exit_143() -> None:
    # a TERM that arrived while the final JSON ("status": "ok") was printed made the exit 143
    import signal

    from nmfsep import cli

    before = signal.getsignal(signal.SIGTERM)
    try:
        signal.signal(signal.SIGTERM, cli._terminate)  # the console script's handler
        cli._finishing()
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_IGN
        mine = lambda signum, frame: None  # noqa: E731 - a host process's own handler
        signal.signal(signal.SIGTERM, mine)
        cli._finishing()
        assert signal.getsignal(signal.SIGTERM) is mine
    finally:
        signal.signal(signal.SIGTERM, before)


def test_sigterm_while_parsing_still_answers_json(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # a TERM in the first moments (imports, parsing) exited 143 with an empty stdout
    import signal

    from nmfsep import cli

    def terminated(**kw: object) -> None:
        raise SystemExit(143)

    before = signal.getsignal(signal.SIGTERM)
    monkeypatch.setattr(cli, "app", terminated)
    monkeypatch.setattr(sys, "argv", ["nmfsep", "separate", "x.wav", "--json"])
    monkeypatch.setitem(cli._STATE, "json_printed", False)
    # main() chooses a numba cache in os.environ: keep it out of the later tests' subprocesses
    monkeypatch.setenv("NUMBA_CACHE_DIR", os.environ.get("NUMBA_CACHE_DIR", ""))
    try:
        with pytest.raises(SystemExit) as info:
            cli.main()
    finally:
        signal.signal(signal.SIGTERM, before)
    assert info.value.code == 143
    payload = json.loads(capsys.readouterr().out)
    assert payload["status"] == "interrupted" and payload["command"] == "separate"
    assert payload["exit_code"] == 143


def test_evaluate_pairs_by_name_in_any_order(tmp_path: Path) -> None:
    """A shell glob lists noise.wav before speech.wav: the names still decide the pairs (they
    were paired by SI-SDR, and a poor speech estimate got the noise estimate's score)."""
    rng = np.random.default_rng(0)
    s, n = rng.standard_normal((2, SR)) * 0.1
    (tmp_path / "ref").mkdir()
    (tmp_path / "est").mkdir()
    sf.write(tmp_path / "ref" / "speech.wav", s, SR, subtype="FLOAT")
    sf.write(tmp_path / "ref" / "noise.wav", n, SR, subtype="FLOAT")
    sf.write(tmp_path / "est" / "speech.wav", 0.3 * s + 0.7 * n, SR, subtype="FLOAT")
    sf.write(tmp_path / "est" / "noise.wav", 0.7 * s + 0.3 * n, SR, subtype="FLOAT")
    sf.write(tmp_path / "est" / "other.wav", s, SR, subtype="FLOAT")
    refs = ["--reference", str(tmp_path / "ref" / "speech.wav")]
    refs += ["--reference", str(tmp_path / "ref" / "noise.wav")]
    est = [str(tmp_path / "est" / f"{name}.wav") for name in ("noise", "speech")]
    r = runner.invoke(app, ["evaluate", *est, *refs, "--no-bss", "--json"])
    assert r.exit_code == 0, r.output
    rows = {row["name"]: row for row in json.loads(r.stdout)["sources"]}
    assert rows["speech"]["estimate"] == est[1] and rows["speech"]["estimate_index"] == 1
    assert rows["noise"]["estimate"] == est[0] and rows["noise"]["estimate_index"] == 0
    assert r.stderr == ""
    # an estimate of no reference's name is left out, and said so
    r = runner.invoke(app, ["evaluate", str(tmp_path / "est" / "other.wav"), *est, *refs,
                            "--no-bss", "--json"])  # fmt: skip
    assert r.exit_code == 0, r.output
    assert [row["estimate"] for row in json.loads(r.stdout)["sources"]] == est[::-1]
    assert "1 estimate(s) have no reference of the same name" in r.stderr
    # names that only partly match: paired by SI-SDR, with a warning
    r = runner.invoke(app, ["evaluate", str(tmp_path / "est" / "other.wav"), est[1], *refs,
                            "--no-bss", "--json"])  # fmt: skip
    assert r.exit_code == 0, r.output
    assert "paired by the best SI-SDR" in r.stderr
    rows = {row["name"]: row for row in json.loads(r.stdout)["sources"]}
    assert rows["speech"]["estimate"].endswith("other.wav")


def test_evaluate_refuses_what_would_not_fit_before_loading(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """BSS-eval's joint system grows with the square of the references (24 files of 1 s took
    2.7 GB) and files are scored whole (a 7.5 MB FLAC of an hour ran out of memory): both are
    refused up front from the headers, in one line."""
    from nmfsep import evaluation, limits

    rng = np.random.default_rng(0)
    for i in range(21):
        sf.write(tmp_path / f"r{i}.wav", 0.1 * rng.standard_normal(400), SR, subtype="FLOAT")
    refs = [x for i in range(21) for x in ("--reference", str(tmp_path / f"r{i}.wav"))]
    est = [str(tmp_path / f"r{i}.wav") for i in range(21)]
    loaded: list[object] = []
    monkeypatch.setattr(evaluation, "_load", lambda *a, **k: loaded.append(a))
    r = runner.invoke(app, ["evaluate", *est, *refs])
    assert r.exit_code == 2 and not loaded
    assert r.stderr.startswith("error: BSS-eval of 21 references would need 2.15 GiB")
    assert "--no-bss" in r.stderr and r.stderr.count("\n") == 1
    monkeypatch.setattr(limits, "MAX_ARRAY_BYTES", 400 * 48 * 4 - 1)
    r = runner.invoke(app, ["evaluate", *est[:2], *refs[:4], "--no-bss"])
    assert r.exit_code == 1 and not loaded
    assert r.stderr.startswith("error: scoring these 4 files whole would need 75 KiB")


def test_evaluate_says_what_it_leaves_out_and_names_a_short_file(
    audio_dir: Path, tmp_path: Path
) -> None:
    clean, _ = sf.read(audio_dir / "clean.wav")
    mix, _ = sf.read(audio_dir / "mix.wav")
    sf.write(tmp_path / "speech.wav", clean, SR, subtype="FLOAT")
    sf.write(tmp_path / "a.wav", clean + 0.1 * (mix - clean), SR, subtype="FLOAT")
    sf.write(tmp_path / "b.wav", mix - clean, SR, subtype="FLOAT")
    # `--reference r a b` makes a and b estimates: two estimates for one reference
    args = ["evaluate", str(tmp_path / "a.wav"), "--reference", str(tmp_path / "speech.wav")]
    extra = runner.invoke(app, [*args, str(tmp_path / "b.wav"), "--json"])
    assert extra.exit_code == 0, extra.output
    assert (
        "2 estimates for 1 reference(s)" in extra.stderr
        and "1 estimate(s) are not scored" in extra.stderr
    )
    # a file too short for BSS-eval: exit 1 (the data), naming the file; not a usage error
    sf.write(tmp_path / "one.wav", clean[:1], SR, subtype="FLOAT")
    short = runner.invoke(
        app, ["evaluate", str(tmp_path / "one.wav"), "--reference", str(tmp_path / "speech.wav")]
    )
    assert short.exit_code == 1
    # one line: no warning about the lengths first
    assert short.stderr.startswith(f"error: {tmp_path / 'one.wav'}: is 1 samples long: BSS-eval")
    assert short.stderr.count("\n") == 1


def test_train_twice_gives_the_same_bytes(audio_dir: Path, tmp_path: Path) -> None:
    """A model file holds no time of writing: the same training and seed, the same file (the
    metadata's ``created`` timestamp made every run differ)."""
    args = [f"speech={audio_dir / 'speech.wav'}", f"noise={audio_dir / 'noise.wav'}",
            "-k", "4", "--n-fft", "256", "--max-iter", "10", "-q"]  # fmt: skip
    digests = []
    for name in ("a.npz", "b.npz"):
        r = runner.invoke(app, ["train", *args, "-o", str(tmp_path / name)])
        assert r.exit_code == 0, r.output
        digests.append(hashlib.sha256((tmp_path / name).read_bytes()).hexdigest())
        time.sleep(1.05)  # a time of writing in seconds would differ
    assert digests[0] == digests[1]


def test_train_on_silence_is_a_data_error_naming_the_file(audio_dir: Path, tmp_path: Path) -> None:
    """Exit 1 like an empty file (it was 2, a usage error), naming the file, nothing written."""
    silent = tmp_path / "quiet.wav"
    sf.write(silent, np.zeros(SR), SR, subtype="PCM_16")
    model = tmp_path / "m.npz"
    r = runner.invoke(
        app, ["train", f"speech={silent}", f"noise={audio_dir / 'noise.wav'}", "-o", str(model)]
    )
    assert r.exit_code == 1, r.output
    assert r.stderr.splitlines()[-1] == (
        f"error: {silent}: source 'speech': the training audio is silent"
    )
    assert not model.exists()


def test_path_options_leave_readability_to_the_loaders(
    audio_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """click's Path type refused an unreadable file itself (a usage error, exit 2, in click's
    words) where ``separate`` says "permission denied" with exit 1: the path options leave the
    check to nmfsep's loaders. Here access() says no to everything and nothing is refused."""
    monkeypatch.setattr(os, "access", lambda *a, **k: False)
    clean = str(audio_dir / "clean.wav")
    r = runner.invoke(app, ["evaluate", clean, "--reference", clean, "--mixture",
                            str(audio_dir / "mix.wav"), "--no-bss", "--json"])  # fmt: skip
    assert r.exit_code == 0, r.output


def test_train_at_768_khz_on_a_short_file(tmp_path: Path) -> None:
    """Refused before ("the training frames would need 2.44 GiB": the 2000-frame floor, not the
    file's 47 frames; then the 128 ms window was 2^17 samples, over the n_fft limit)."""
    rate = 768_000
    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        sf.write(tmp_path / f"{name}.wav", 0.1 * rng.standard_normal(rate // 4), rate, "FLOAT")
    model = tmp_path / "m.npz"
    r = runner.invoke(app, ["train", f"a={tmp_path / 'a.wav'}", f"b={tmp_path / 'b.wav'}",
                            "-o", str(model), "-k", "2", "--max-iter", "2", "--json"])  # fmt: skip
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["stft"]["n_fft"] == 65536


def test_train_keeps_a_model_another_run_wrote_meanwhile(
    audio_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without --overwrite the output's absence was checked only at the start: a second
    ``train -o`` finishing first had its model replaced."""
    from nmfsep import training

    model = tmp_path / "m.npz"
    real = training.train_from_files

    def slow(*args: object, **kwargs: object) -> object:
        result = real(*args, **kwargs)  # type: ignore[arg-type]
        model.write_bytes(b"the other run's model")
        return result

    monkeypatch.setattr(training, "train_from_files", slow)
    args = ["train", f"speech={audio_dir / 'speech.wav'}", f"noise={audio_dir / 'noise.wav'}",
            "-k", "2", "--max-iter", "2", "-o", str(model)]  # fmt: skip
    r = runner.invoke(app, args)
    assert r.exit_code == 1
    assert f"error: {model}: exists: another run wrote it while this one worked" in r.stderr
    assert model.read_bytes() == b"the other run's model"
    assert runner.invoke(app, [*args, "--overwrite", "-q"]).exit_code == 0
    assert model.read_bytes() != b"the other run's model"


def test_an_unwritable_numba_cache_dir_is_replaced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An inherited NUMBA_CACHE_DIR that cannot be written (another user's) made numba fail
    with an internal error ("cannot cache function ... no locator available")."""
    from nmfsep import cli

    (tmp_path / "file").write_text("x")
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path / "file" / "cache"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    cli._numba_cache_dir()
    assert os.environ["NUMBA_CACHE_DIR"] == str(tmp_path / "xdg" / "nmfsep" / "numba")
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path / "mine"))  # a writable one is kept
    cli._numba_cache_dir()
    assert os.environ["NUMBA_CACHE_DIR"] == str(tmp_path / "mine")


@pytest.mark.parametrize("command", ["separate", "cluster"])
def test_format_that_contradicts_the_template_is_refused(
    audio_dir: Path, model_path: Path, tmp_path: Path, command: str
) -> None:
    """``--format flac --filename '{source}.wav'`` wrote WAV files and said nothing: the path
    decides the format."""
    extra = ["-m", str(model_path)] if command == "separate" else ["-k", "4"]
    base = [command, str(audio_dir / "mix.wav"), *extra, "-o", str(tmp_path / "o"), "-q"]
    r = runner.invoke(app, [*base, "--format", "flac", "--filename", "{source}.wav"])
    assert r.exit_code == 2, r.output
    assert "--format flac but --filename '{source}.wav' writes .wav files" in r.output
    assert not (tmp_path / "o").exists()
    # the template's own extension, with no --format, or {ext} with --format: as asked
    r = runner.invoke(app, [*base, "--filename", "{source}.flac"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, [*base, "--format", "flac", "--filename", "x/{source}.{ext}"])
    assert r.exit_code == 0, r.output
    written = sorted(
        p.relative_to(tmp_path / "o").as_posix() for p in (tmp_path / "o").rglob("*.*")
    )
    assert all(p.endswith(".flac") for p in written) and len(written) == 4, written
    assert sf.info(tmp_path / "o" / written[0]).format == "FLAC"
