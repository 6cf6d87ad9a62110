"""Hardening of ``nmfsep separate``: what the user sees for every bad input, model and output.

The contract checked everywhere: exit code 0 (all inputs fine), 1 (some input failed) or 2
(usage error); exactly one ``error: ...`` line on stderr per failing input, naming the file;
never a traceback. Loader-level refusals are tested in test_audio.py / test_model.py, and
interruptions (SIGINT / SIGKILL) in test_signals.py.
"""

from __future__ import annotations

import errno
import io
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from nmfsep.cli import app
from nmfsep.errors import ParameterError
from nmfsep.nmf import fit_nmf
from nmfsep.separation import train_model
from nmfsep.spectral import STFTConfig

SR = 8000
N_FFT = 64
runner = CliRunner()


# ---------------------------------------------------------------------------------------------
# helpers


def tone(n: int, sr: int = SR, channels: int = 1, seed: int = 0) -> np.ndarray:
    """(n, channels) float32: a 200 Hz harmonic tone plus a little noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) / sr
    y = 0.2 * np.sin(2 * np.pi * 200 * t) + 0.1 * np.sin(2 * np.pi * 400 * t)
    y = y[:, None] + 0.02 * rng.standard_normal((n, channels))
    return (y * np.linspace(1.0, 0.5, channels)).astype(np.float32)


def wav_bytes(y: np.ndarray, sr: int = SR, subtype: str = "PCM_16") -> bytes:
    buf = io.BytesIO()
    sf.write(buf, y, sr, subtype=subtype, format="WAV")
    return buf.getvalue()


def claim_one_hour(data: bytes, keep_frames: int) -> bytes:
    """A 16-bit mono WAV whose header claims one hour but that holds ``keep_frames`` frames."""
    pos = data.index(b"data")
    claimed = 3600 * SR * 2
    out = bytearray(data[: pos + 8 + 2 * keep_frames])
    out[pos + 4 : pos + 8] = struct.pack("<I", claimed)
    out[4:8] = struct.pack("<I", claimed + pos)
    return bytes(out)


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


def assert_failures(stderr: str, expected: dict[str, str]) -> None:
    """One ``error:`` line per failing input, naming it, with the expected message."""
    assert "Traceback" not in stderr
    lines = error_lines(stderr)
    assert len(lines) == len(expected), stderr
    for name, needle in expected.items():
        matching = [line for line in lines if name in line]
        assert len(matching) == 1, (name, stderr)
        assert needle in matching[0], (needle, matching[0])


def separate(*args: str | Path, model: Path | None) -> Any:
    argv = ["separate", *map(str, args)]
    if model is not None:
        argv += ["-m", str(model)]
    result = runner.invoke(app, argv)
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout
    return result


def python_m(*args: str | Path, cwd: Path | None = None, **kw: Any) -> Any:
    return subprocess.run(
        [sys.executable, "-m", "nmfsep", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=120,
        **kw,
    )


# ---------------------------------------------------------------------------------------------
# fixtures


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fast 8 kHz speech/noise model: n_fft 64, 3 bases per source."""
    n = 2 * SR
    speech = tone(n).T
    noise = (0.05 * np.random.default_rng(1).standard_normal((1, n))).astype(np.float32)
    model = train_model(
        {"speech": [speech], "noise": [noise]},
        sr=SR,
        n_components=3,
        stft_config=STFTConfig(n_fft=N_FFT, hop_length=16),
        max_iter=20,
        refiner=None,  # the NMF path alone (a "speech" source gets the refiner by default)
    )
    return model.save(tmp_path_factory.mktemp("model") / "tiny.npz")


def _make_input(kind: str, d: Path) -> Path:
    """Write the input file of ``kind`` under ``d`` and return its path."""
    path = d / f"{kind}.wav"
    n = SR // 2
    if kind == "missing":
        return path
    if kind == "zero_bytes":
        path.write_bytes(b"")
    elif kind == "text":
        path.write_text("this is a text file, not audio\n" * 10)
    elif kind == "truncated_header":
        path.write_bytes(wav_bytes(tone(n))[:20])
    elif kind == "no_samples":
        path.write_bytes(wav_bytes(np.zeros((0, 1), np.float32)))
    elif kind == "shorter_than_a_frame":
        sf.write(path, tone(N_FFT // 4), SR)
    elif kind == "one_sample":
        sf.write(path, tone(1), SR, subtype="FLOAT")
    elif kind == "all_zero":
        sf.write(path, np.zeros((n, 2), np.float32), SR)
    elif kind in ("nan", "inf"):
        y = tone(n)
        y[100, 0] = np.nan if kind == "nan" else -np.inf
        sf.write(path, y, SR, subtype="FLOAT")
    elif kind in ("PCM_U8", "PCM_24", "DOUBLE", "FLOAT", "PCM_16"):
        sf.write(path, tone(n), SR, subtype=kind)
    elif kind == "six_channels":
        sf.write(path, tone(n, channels=6), SR)
    elif kind == "8kHz":
        sf.write(path, tone(n, sr=8000), 8000)
    elif kind == "96kHz":
        sf.write(path, tone(96000 // 4, sr=96000), 96000)
    elif kind == "hour_header_no_data":
        path.write_bytes(claim_one_hour(wav_bytes(tone(SR)), 0))
    elif kind == "hour_header_1s_data":
        path.write_bytes(claim_one_hour(wav_bytes(tone(SR)), SR))
    elif kind == "huge_float_values":
        sf.write(path, tone(n) * np.float32(4e37), SR, subtype="FLOAT")
    elif kind == "tiny_float_values":
        sf.write(path, tone(n) * np.float32(1e-30), SR, subtype="FLOAT")
    else:  # pragma: no cover
        raise AssertionError(kind)
    return path


#: Inputs that must fail: (message on the one error line). Exit code 1.
FAILING = {
    "missing": "no such file",
    "zero_bytes": "is empty (0 bytes), not an audio file",
    "text": "not an audio file, or a format libsndfile cannot read",
    "truncated_header": "malformed or truncated audio header",
    "no_samples": "contains no audio samples (0 frames)",
    "nan": "contains NaN or infinite samples",
    "inf": "contains NaN or infinite samples",
    "hour_header_no_data": "contains no audio samples (0 frames)",
}

#: Inputs that must work: (frames, channels, rate, output subtype) of every output.
WORKING = {
    "shorter_than_a_frame": (N_FFT // 4, 1, SR, "PCM_16"),
    "one_sample": (1, 1, SR, "FLOAT"),
    "all_zero": (SR // 2, 2, SR, "PCM_16"),
    "PCM_U8": (SR // 2, 1, SR, "FLOAT"),
    "PCM_16": (SR // 2, 1, SR, "PCM_16"),
    "PCM_24": (SR // 2, 1, SR, "PCM_24"),
    "FLOAT": (SR // 2, 1, SR, "FLOAT"),
    "DOUBLE": (SR // 2, 1, SR, "DOUBLE"),
    "six_channels": (SR // 2, 6, SR, "PCM_16"),
    "8kHz": (SR // 2, 1, 8000, "PCM_16"),
    "96kHz": (96000 // 4, 1, 96000, "PCM_16"),
    "hour_header_1s_data": (SR, 1, SR, "PCM_16"),
    "huge_float_values": (SR // 2, 1, SR, "FLOAT"),
    "tiny_float_values": (SR // 2, 1, SR, "FLOAT"),
}

#: Known bugs elsewhere (strict: these tests fail loudly once fixed, then drop the mark).
KNOWN_BUGS: dict[str, str] = {}


def _known(kinds: list[str]) -> list[Any]:
    return [
        pytest.param(k, marks=pytest.mark.xfail(strict=True, reason=KNOWN_BUGS[k]))
        if k in KNOWN_BUGS
        else k
        for k in kinds
    ]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("inputs")
    for kind in [*FAILING, *WORKING]:
        _make_input(kind, d)
    return d


def check_outputs(out: Path, inp: Path, expected: tuple[int, int, int, str]) -> None:
    subtype = expected[3]
    mix, _ = sf.read(inp, dtype="float64", always_2d=True)
    total = np.zeros_like(mix)
    for source in ("speech", "noise"):
        info = sf.info(out / inp.stem / f"{source}.wav")
        assert (info.frames, info.channels, info.samplerate, info.subtype) == expected
        y, _ = sf.read(out / inp.stem / f"{source}.wav", dtype="float64", always_2d=True)
        assert np.isfinite(y).all()
        total += y
    # The sources sum back to the mixture (up to the output's quantisation).
    scale = max(float(np.abs(mix).max()), 1e-30)
    atol = 1e-6 if subtype in ("FLOAT", "DOUBLE") else 2.0 ** -(7 if subtype == "PCM_U8" else 14)
    np.testing.assert_allclose(total / scale, mix / scale, atol=atol * 4)


# ---------------------------------------------------------------------------------------------
# the bad-input matrix


@pytest.mark.parametrize("kind", list(FAILING))
def test_failing_input(kind: str, inputs: Path, tiny_model: Path, tmp_path: Path) -> None:
    path = inputs / f"{kind}.wav"
    before = path.read_bytes() if path.is_file() else None
    result = separate(path, "-o", tmp_path / "out", model=tiny_model)
    assert result.exit_code == 1, result.output
    assert_failures(result.stderr, {str(path): FAILING[kind]})
    (line,) = error_lines(result.stderr)
    assert line.startswith(f"error: {path}: {FAILING[kind]}")
    assert not (tmp_path / "out" / kind).exists()
    if before is not None:
        assert path.read_bytes() == before  # inputs are never modified


@pytest.mark.parametrize("kind", _known(list(WORKING)))
def test_working_input(kind: str, inputs: Path, tiny_model: Path, tmp_path: Path) -> None:
    path = inputs / f"{kind}.wav"
    result = separate(path, "-o", tmp_path / "out", "-q", model=tiny_model)
    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    check_outputs(tmp_path / "out", path, WORKING[kind])


def test_all_zero_input_gives_silent_outputs(
    inputs: Path, tiny_model: Path, tmp_path: Path
) -> None:
    result = separate(inputs / "all_zero.wav", "-o", tmp_path, "-q", model=tiny_model)
    assert result.exit_code == 0
    for source in ("speech", "noise"):
        y, _ = sf.read(tmp_path / "all_zero" / f"{source}.wav")
        assert not y.any()


@pytest.mark.parametrize("refined", [False, True])
@pytest.mark.parametrize("scale", [4e37, 1e-30])
def test_separate_api_is_level_safe(scale: float, refined: bool, tiny_model: Path) -> None:
    """Float audio near float32's limits: scaled internally, same masks as at a normal level.
    With the trained-path refiner attached: close to it (the refiner's features floor the band
    power at 1e-12, so near-empty bins of a pure tone move a little with the level)."""
    import dataclasses

    from nmfsep.model import load_model, trained_refiner
    from nmfsep.separation import separate as separate_api

    model = load_model(tiny_model)
    if refined:
        meta = {**model.metadata, "separation": {"refine": 0.5}}
        model = dataclasses.replace(model, refiner=trained_refiner()[0], metadata=meta)
    y = tone(SR // 2, channels=2).T
    ref = separate_api(y, SR, model, tol=0, max_iter=20)
    assert ref.settings.get("refine", 0.0) == (0.5 if refined else 0.0)
    loud = separate_api(y * np.float32(scale), SR, model, tol=0, max_iter=20)
    total = sum(v.astype(np.float64) for v in loud.sources.values())
    assert all(np.isfinite(v).all() for v in loud.sources.values())
    np.testing.assert_allclose(total / scale, y, atol=1e-5)
    for name in ref.sources:
        np.testing.assert_allclose(
            loud.sources[name] / scale, ref.sources[name], atol=2e-3 if refined else 1e-4
        )


@pytest.mark.parametrize("kind", ["8kHz", "96kHz", "six_channels", "shorter_than_a_frame"])
def test_built_in_model(kind: str, inputs: Path, tmp_path: Path) -> None:
    """The default model (16 kHz) on other rates: bases mapped, outputs at the input's rate."""
    result = separate(inputs / f"{kind}.wav", "-o", tmp_path, "-q", model=None)
    assert result.exit_code == 0, result.output
    check_outputs(tmp_path, inputs / f"{kind}.wav", WORKING[kind])


def test_whole_matrix_in_one_batch(inputs: Path, tiny_model: Path, tmp_path: Path) -> None:
    """A directory input expands to its audio files; each bad one is one line, the rest work."""
    batch = tmp_path / "batch"
    shutil.copytree(inputs, batch, ignore=lambda d, names: [f"{k}.wav" for k in KNOWN_BUGS])
    result = separate(batch, "-o", tmp_path / "out", "--json", "-j", "1", model=tiny_model)
    assert result.exit_code == 1
    present = {k: v for k, v in FAILING.items() if k != "missing"}
    assert_failures(result.stderr, {str(batch / f"{k}.wav"): v for k, v in present.items()})
    summary = json.loads(result.stdout)
    statuses = {Path(r["input"]).stem: r["status"] for r in summary["files"]}
    working = [k for k in WORKING if k not in KNOWN_BUGS]
    assert statuses == {**dict.fromkeys(present, "error"), **dict.fromkeys(working, "ok")}
    assert summary["summary"]["failed"] == len(present) and summary["ok"] is False
    for kind in working:
        assert (tmp_path / "out" / kind / "speech.wav").is_file()


def test_directories_as_inputs_and_model(inputs: Path, tiny_model: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("no audio here")
    result = separate(empty, "-o", tmp_path / "out", model=tiny_model)
    assert result.exit_code == 1
    assert error_lines(result.stderr) == [f"error: {empty}: no audio files in directory"]

    as_model = separate(inputs / "PCM_16.wav", "-o", tmp_path / "out", model=inputs)
    assert as_model.exit_code == 1
    assert error_lines(as_model.stderr) == [f"error: {inputs}: is a directory, not a model file"]

    pattern = separate(tmp_path / "nothing*.wav", "-o", tmp_path / "out", model=tiny_model)
    assert pattern.exit_code == 1
    assert_failures(pattern.stderr, {"nothing*.wav": "pattern matches no file"})


def test_representative_subset_through_python_dash_m(
    inputs: Path, tiny_model: Path, tmp_path: Path
) -> None:
    """The real console path (``python -m nmfsep``): exit codes and stderr lines."""
    names = ["missing", "text", "truncated_header", "nan", "no_samples", "PCM_24", "one_sample"]
    args = [inputs / f"{n}.wav" for n in names]
    proc = python_m("separate", *args, "-m", tiny_model, "-o", tmp_path / "out", "-j", "1")
    assert proc.returncode == 1, proc.stderr
    expected = {str(inputs / f"{n}.wav"): FAILING[n] for n in names if n in FAILING}
    assert_failures(proc.stderr, expected)
    assert (tmp_path / "out" / "PCM_24" / "noise.wav").is_file()
    assert (tmp_path / "out" / "one_sample" / "noise.wav").is_file()

    usage = python_m("separate", args[-1], "-m", tiny_model, "--filename", "../{source}.{ext}")
    assert usage.returncode == 2 and "Traceback" not in usage.stderr
    assert usage.stderr.count("\n") == 1 and usage.stderr.startswith("error: --filename")

    bad_model = python_m("separate", args[-1], "-m", inputs / "text.wav", "-o", tmp_path / "o2")
    assert bad_model.returncode == 1
    assert bad_model.stderr == (
        f"error: {inputs / 'text.wav'}: not an nmfsep model file (not a .npz archive)\n"
    )


# ---------------------------------------------------------------------------------------------
# models


def _model_parts(path: Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    with np.load(path, allow_pickle=False) as npz:
        meta = json.loads(str(npz["metadata"]))
        arrays = {k: npz[k] for k in npz.files if k != "metadata"}
    return meta, arrays


def _write_model(path: Path, meta: dict[str, Any] | None, arrays: dict[str, Any]) -> Path:
    entries = dict(arrays)
    if meta is not None:
        entries["metadata"] = np.array(json.dumps(meta))
    with open(path, "wb") as fh:
        np.savez(fh, **entries)  # type: ignore[arg-type]
    return path


class _Marker:
    """Unpickling this object would create a file: proof that something was unpickled."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (self.path, "w"))


def _edit(name: str, tiny_model: Path, d: Path) -> Path:
    meta, arrays = _model_parts(tiny_model)
    if name == "missing_key":
        del meta["sr"]
    elif name == "wrong_shape":
        arrays["W_0"] = np.ones((N_FFT // 2 + 5, 3), np.float32)
    elif name == "nan_bases":
        arrays["W_0"] = np.full_like(arrays["W_0"], np.nan)
    elif name == "negative_bases":
        arrays["W_1"] = arrays["W_1"].copy()
        arrays["W_1"][2, 1] = -0.5
    elif name == "format_version_3":
        meta["format_version"] = 3
    elif name == "no_metadata":
        meta = None  # type: ignore[assignment]
    else:  # pragma: no cover
        raise AssertionError(name)
    return _write_model(d / f"{name}.npz", meta, arrays)


BAD_MODELS = {
    "missing_key": "lacks 'sr'",
    "wrong_shape": "bases have 37 rows but",
    "nan_bases": "NaN or infinite",
    "negative_bases": "negative values",
    "format_version_3": "model format version 3 is newer than this nmfsep supports (2)",
    "no_metadata": "not an nmfsep model file",
}


@pytest.mark.parametrize("name", list(BAD_MODELS))
def test_bad_model_is_one_line_exit_1(
    name: str, inputs: Path, tiny_model: Path, tmp_path: Path
) -> None:
    bad = _edit(name, tiny_model, tmp_path)
    result = separate(inputs / "PCM_16.wav", "-o", tmp_path / "out", model=bad)
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {bad}: "), result.stderr
    assert BAD_MODELS[name] in lines[0]
    assert not (tmp_path / "out").exists()


def test_pickled_model_is_refused_without_unpickling(
    inputs: Path, tiny_model: Path, tmp_path: Path
) -> None:
    marker = tmp_path / "PWNED"
    meta, arrays = _model_parts(tiny_model)
    evil = np.array([_Marker(str(marker))], dtype=object)
    for i, entries in enumerate([{**arrays, "W_0": evil}, {**arrays, "extra": evil}]):
        path = tmp_path / f"evil{i}.npz"
        with open(path, "wb") as fh:
            np.savez(fh, **entries, metadata=np.array(json.dumps(meta)))  # type: ignore[arg-type]
        result = separate(inputs / "PCM_16.wav", "-o", tmp_path / "out", model=path)
        assert result.exit_code == 1
        assert result.stderr.startswith(f"error: {path}: refusing pickled data")
        assert result.stderr.count("\n") == 1
    # a raw pickle, and a zip holding a pickle, named .npz
    import pickle

    raw = tmp_path / "raw.npz"
    raw.write_bytes(pickle.dumps(_Marker(str(marker))))
    zipped = tmp_path / "zipped.npz"
    with zipfile.ZipFile(zipped, "w") as zf:
        zf.writestr("W_0.pkl", pickle.dumps(_Marker(str(marker))))
    for path in (raw, zipped):
        result = separate(inputs / "PCM_16.wav", "-o", tmp_path / "out", model=path)
        assert result.exit_code == 1 and len(error_lines(result.stderr)) == 1, result.stderr
        assert str(path) in result.stderr
    assert not marker.exists()
    assert not (tmp_path / "out").exists()


def test_missing_and_non_model_files(inputs: Path, tmp_path: Path) -> None:
    for model, needle in [
        (tmp_path / "nope.npz", "no such model file"),
        (inputs / "zero_bytes.wav", "is empty (0 bytes), not an nmfsep model file"),
        (inputs / "PCM_16.wav", "not an nmfsep model file (not a .npz archive)"),
    ]:
        result = separate(inputs / "PCM_16.wav", "-o", tmp_path / "out", model=model)
        assert result.exit_code == 1
        assert result.stderr == f"error: {model}: {needle}\n"


@pytest.mark.parametrize("rate", [11025, 16000, 44100])
def test_model_rate_differs_from_input(rate: int, tiny_model: Path, tmp_path: Path) -> None:
    """An 8 kHz model on other rates: frequency mapping, outputs at the input's rate."""
    path = tmp_path / f"mix{rate}.wav"
    sf.write(path, tone(rate // 2, sr=rate, channels=2), rate, subtype="FLOAT")
    result = separate(path, "-o", tmp_path / "out", "--json", "-q", model=tiny_model)
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)["files"][0]
    assert record["settings"]["sr"] == rate and record["settings"]["model_sr"] == SR
    check_outputs(tmp_path / "out", path, (rate // 2, 2, rate, "FLOAT"))


# ---------------------------------------------------------------------------------------------
# outputs


@pytest.mark.parametrize(
    "template", ["../{source}.{ext}", "{track}/../../{source}.{ext}", "/tmp/{source}.{ext}"]
)
def test_templates_escaping_outdir_are_usage_errors(
    template: str, inputs: Path, tiny_model: Path, tmp_path: Path
) -> None:
    result = separate(
        inputs / "PCM_16.wav",
        "-o",
        tmp_path / "a" / "out",
        "--filename",
        template,
        model=tiny_model,
    )
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: --filename")
    assert not any(tmp_path.rglob("*.wav"))


def test_track_named_dot_dot_cannot_escape(tiny_model: Path, tmp_path: Path) -> None:
    src = tmp_path / "in"
    src.mkdir()
    evil = src / "...wav"  # its track name ("stem") is ".."
    sf.write(evil, tone(SR // 4), SR, format="WAV")
    sf.write(src / "fine.wav", tone(SR // 4), SR)
    out = tmp_path / "a" / "out"
    # default template "{track}/{source}.{ext}": "../speech.wav" would land next to OUTDIR
    result = separate(evil, src / "fine.wav", "-o", out, "-j", "1", model=tiny_model)
    assert result.exit_code == 1
    assert_failures(result.stderr, {str(evil): "would leave the output directory"})
    assert (out / "fine" / "speech.wav").is_file()
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["out"]
    # a template that keeps it inside OUTDIR is fine
    template = "{track}.{source}.{ext}"
    result = separate(evil, "-o", out, "--filename", template, "-q", model=tiny_model)
    assert result.exit_code == 0
    assert (out / "...speech.wav").is_file()


@pytest.mark.parametrize(
    ("template", "needle"),
    [
        ("{track}/{source}", "must end with .{ext}"),
        ("{source}/", "must end with .{ext}"),
        ("{track}.wav", "must contain {source}"),
        ("{nope}/{source}.{ext}", "unknown field(s) nope"),
        ("{source.__class__}.{ext}", "unknown field(s)"),
        ("{source", "bad --filename template"),
    ],
)
def test_bad_templates_are_usage_errors(
    template: str, needle: str, inputs: Path, tiny_model: Path, tmp_path: Path
) -> None:
    result = separate(
        inputs / "PCM_16.wav", "-o", tmp_path / "out", "--filename", template, model=tiny_model
    )
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and needle in result.stderr, result.stderr
    assert not (tmp_path / "out").exists()


def test_outdir_is_a_file_or_under_a_file(inputs: Path, tiny_model: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("a file")
    result = separate(inputs / "PCM_16.wav", "-o", blocker, model=tiny_model)
    assert result.exit_code == 2
    assert result.stderr == f"error: {blocker}: output directory is a file\n"
    result = separate(inputs / "PCM_16.wav", "-o", blocker / "sub", model=tiny_model)
    assert result.exit_code == 2
    assert result.stderr == (
        f"error: {blocker / 'sub'}: cannot create the output directory: {blocker} is a file\n"
    )
    assert blocker.read_text() == "a file"


def test_track_directory_in_the_way_names_the_output(
    inputs: Path, tiny_model: Path, tmp_path: Path
) -> None:
    """A file where the track's output directory should be: the error names it."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "PCM_16").write_text("in the way")
    result = separate(inputs / "PCM_16.wav", inputs / "PCM_24.wav", "-o", out, "-j", "1",
                      model=tiny_model)  # fmt: skip
    assert result.exit_code == 1
    assert_failures(
        result.stderr,
        {str(inputs / "PCM_16.wav"): "cannot create output: a file is in the way"},
    )
    assert str(out / "PCM_16") in error_lines(result.stderr)[0]
    assert (out / "PCM_24" / "speech.wav").is_file()


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A temporary directory other users can enter (pytest's tmp_path is private to root)."""
    d = Path(tempfile.mkdtemp(prefix="nmfsep-perm-"))
    d.chmod(0o755)
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def _as_unprivileged() -> list[str]:
    """Command prefix running this interpreter as an unprivileged user.

    Not root: no prefix (a directory without write permission is enough). Root: ``setpriv`` to
    ``nobody`` -- only when ``nobody`` can run this interpreter and import nmfsep from where the
    clone lives (a clone inside a 0700 home directory or ``mktemp -d`` cannot be entered by
    ``nobody``); otherwise skipped, and :func:`test_outdir_not_writable_simulated` covers it.
    """
    if os.name != "posix":
        pytest.skip("POSIX permissions only")
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv: cannot drop privileges to test permissions")
    prefix = [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups"]
    probe = subprocess.run(
        [*prefix, sys.executable, "-c", "import nmfsep.cli"],
        capture_output=True, timeout=60, cwd="/",
    )  # fmt: skip
    if probe.returncode != 0:
        pytest.skip(
            "the unprivileged user cannot run this interpreter or import nmfsep from here "
            "(e.g. a clone in a 0700 directory); see test_outdir_not_writable_simulated"
        )
    return prefix


def _outdir_fixture(shared_dir: Path, tiny_model: Path) -> tuple[Path, Path, Path]:
    mix = shared_dir / "mix.wav"
    sf.write(mix, tone(SR // 4), SR)
    model = shared_dir / "model.npz"
    shutil.copy(tiny_model, model)
    for p in (mix, model):
        p.chmod(0o644)
    locked = shared_dir / "locked"
    locked.mkdir(mode=0o555)
    locked.chmod(0o555)
    return mix, model, locked


def test_outdir_not_writable(shared_dir: Path, tiny_model: Path) -> None:
    """The real thing: the OS refuses the writes (as a normal user, or as root dropped to
    ``nobody`` when possible)."""
    prefix = _as_unprivileged()
    mix, model, locked = _outdir_fixture(shared_dir, tiny_model)
    env = {**os.environ, "HOME": str(shared_dir)}

    def run(outdir: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*prefix, sys.executable, "-m", "nmfsep", "separate", str(mix), "-m", str(model),
             "-o", str(outdir)],
            capture_output=True, text=True, timeout=120, cwd=shared_dir, env=env,
        )  # fmt: skip

    proc = run(locked)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr == f"error: {locked}: output directory is not writable\n"
    proc = run(locked / "sub")
    assert proc.returncode == 1
    assert proc.stderr == (
        f"error: {locked / 'sub'}: cannot create the output directory: {locked} is not writable\n"
    )
    assert not list(locked.iterdir())


def test_outdir_not_writable_simulated(
    shared_dir: Path, tiny_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Independent of who runs the tests and where the clone lives: the permission checks and
    the writes under the locked directory fail with EACCES (as they do for a user without write
    permission; root bypasses permission bits, so they are injected)."""
    mix, model, locked = _outdir_fixture(shared_dir, tiny_model)
    real_access, real_open, real_mkdir = os.access, os.open, os.mkdir

    def under_locked(path: Any) -> bool:
        try:
            p = Path(os.fsdecode(path)).absolute()
        except (TypeError, ValueError):
            return False
        return p == locked or locked in p.parents

    def access(path: Any, mode: int, *a: Any, **k: Any) -> bool:
        if under_locked(path) and mode & os.W_OK:
            return False
        return real_access(path, mode, *a, **k)

    def fake_open(path: Any, flags: int, *a: Any, **k: Any) -> int:
        if under_locked(path) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
            raise PermissionError(errno.EACCES, "Permission denied", os.fsdecode(path))
        return real_open(path, flags, *a, **k)

    def fake_mkdir(path: Any, *a: Any, **k: Any) -> None:
        if under_locked(Path(os.fsdecode(path)).parent):
            raise PermissionError(errno.EACCES, "Permission denied", os.fsdecode(path))
        real_mkdir(path, *a, **k)

    monkeypatch.setattr(os, "access", access)
    monkeypatch.setattr(os, "open", fake_open)
    monkeypatch.setattr(os, "mkdir", fake_mkdir)
    result = separate(mix, "-o", locked, model=model)
    assert result.exit_code == 1
    assert error_lines(result.stderr) == [f"error: {locked}: output directory is not writable"]
    result = separate(mix, "-o", locked / "sub", model=model)
    assert result.exit_code == 1
    assert error_lines(result.stderr) == [
        f"error: {locked / 'sub'}: cannot create the output directory: {locked} is not writable"
    ]
    # train: refused before the training (it failed only when saving)
    result = runner.invoke(
        app, ["train", f"speech={mix}", f"noise={mix}", "-o", str(locked / "m.npz"), "-k", "2"]
    )
    assert result.exit_code == 1
    assert error_lines(result.stderr) == [f"error: {locked}: output directory is not writable"]
    assert "bases" not in result.stderr
    assert not list(locked.iterdir())


def test_existing_outputs_are_skipped_and_never_clobbered(
    inputs: Path, tiny_model: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    mix = inputs / "PCM_16.wav"
    first = separate(mix, "-o", out, model=tiny_model)
    assert first.exit_code == 0
    speech, noise = out / "PCM_16" / "speech.wav", out / "PCM_16" / "noise.wav"
    speech.write_bytes(b"user's own file")  # not even audio: it must not be touched
    os.utime(speech, ns=(1_000_000_000, 1_000_000_000))
    stamp, content = speech.stat().st_mtime_ns, speech.read_bytes()

    again = separate(mix, "-o", out, model=tiny_model)
    assert again.exit_code == 0 and error_lines(again.stderr) == []
    assert f"skip  {mix}: outputs exist (use --overwrite to redo)" in again.stderr
    assert speech.stat().st_mtime_ns == stamp and speech.read_bytes() == content

    # Only some outputs exist (another model, another run): refused, not half-overwritten.
    noise.unlink()
    partial = separate(mix, "-o", out, model=tiny_model)
    assert partial.exit_code == 1
    assert_failures(partial.stderr, {str(mix): "exists but not all of its outputs do"})
    assert speech.stat().st_mtime_ns == stamp and not noise.exists()

    redo = separate(mix, "-o", out, "--overwrite", "-q", model=tiny_model)
    assert redo.exit_code == 0
    assert sf.info(speech).frames == sf.info(mix).frames and noise.is_file()


@pytest.mark.parametrize(
    ("option", "needle"),
    [
        (["--mask-power", "0"], "--mask-power must be a positive number"),
        (["--l1", "inf"], "--l1 must be a finite number"),
        (["--beta", "nan"], "--beta must be a finite number"),
        (["--beta", "cosine"], "unknown beta 'cosine'"),
        (["--format", "mp4"], "--format must be one of wav, flac"),
        (["--mask-power", "-1"], "Invalid value for '--mask-power'"),
        (["--jobs", "0"], "Invalid value for '--jobs'"),
        # accepted before, then numpy overflow warnings (or a per-file error for -j)
        (["--mask-power", "1e308"], "--mask-power must be a finite number > 0 and <= 64"),
        (["--l1", "1e308"], "--l1 must be a finite number >= 0 and <= 1e+06"),
        (["--beta", "1e308"], "--beta must be in [-5, 5]"),
        (["--beta", "-6"], "--beta must be in [-5, 5]"),
        (["--jobs", "257"], "Invalid value for '--jobs'"),
    ],
)
def test_bad_options_are_usage_errors(
    option: list[str], needle: str, inputs: Path, tiny_model: Path, tmp_path: Path
) -> None:
    result = separate(inputs / "PCM_16.wav", "-o", tmp_path / "out", *option, model=tiny_model)
    assert result.exit_code == 2
    assert needle in result.stderr
    if needle.startswith("--") or needle.startswith("unknown"):
        assert result.stderr == f"error: {result.stderr[len('error: ') :]}"
        assert result.stderr.count("\n") == 1
    assert not (tmp_path / "out").exists()


def test_no_input_is_a_usage_error(tiny_model: Path) -> None:
    result = separate(model=tiny_model)
    assert result.exit_code == 2
    assert result.stderr.startswith("error: no input given")


def test_file_name_with_a_line_break_stays_on_one_line(tiny_model: Path, tmp_path: Path) -> None:
    path = tmp_path / "two\nlines.wav"
    path.write_text("not audio")
    result = separate(path, "-o", tmp_path / "out", model=tiny_model)
    assert result.exit_code == 1
    (line,) = error_lines(result.stderr)
    assert "two\\nlines.wav: not an audio file" in line
    assert not any(line.startswith("lines.wav") for line in result.stderr.splitlines())
    # and so does the ok line of such a file
    sf.write(path, tone(SR // 4), SR)
    result = separate(path, "-o", tmp_path / "out", model=tiny_model)
    assert result.exit_code == 0
    (ok,) = [line for line in result.stderr.splitlines() if line.startswith("ok ")]
    assert "two\\nlines.wav ->" in ok and not result.stderr.splitlines()[-1].startswith("lines")


# ---------------------------------------------------------------------------------------------
# fuzzing the NMF core (loaders are fuzzed in test_audio.py / test_model.py)

BETAS = [0.0, 0.5, 1.0, 1.5, 2.0, 3.0]


@st.composite
def _matrices(draw: Callable[..., Any]) -> np.ndarray:
    f = draw(st.integers(1, 6))
    n = draw(st.integers(1, 6))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    # Huge magnitudes: up to 1e7 in float32 (the largest STFT magnitudes separate() produces
    # after its level safety scaling are ~1e8), 1e30 in float64. See test_fit_nmf_extreme_*.
    exponent = draw(st.sampled_from([-30, -12, -3, 0, 3, 6, *([12, 30] * (dtype == np.float64))]))
    values = draw(
        st.lists(
            st.one_of(
                st.just(0.0),
                st.floats(0.0, 10.0, allow_nan=False, allow_infinity=False),
            ),
            min_size=f * n,
            max_size=f * n,
        )
    )
    V = (np.asarray(values, dtype=np.float64).reshape(f, n) * 10.0**exponent).astype(dtype)
    return V


@settings(
    max_examples=80,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    V=_matrices(),
    k=st.integers(1, 4),
    beta=st.sampled_from(BETAS),
    l1=st.sampled_from([0.0, 0.1, 10.0]),
    l2=st.sampled_from([0.0, 0.5]),
    init=st.sampled_from([None, "random", "nndsvd"]),
    fixed=st.booleans(),
)
def test_fuzz_fit_nmf(
    V: np.ndarray, k: int, beta: float, l1: float, l2: float, init: str | None, fixed: bool
) -> None:
    kw: dict[str, Any] = dict(beta=beta, l1_H=l1, l2_H=l2, max_iter=15, random_state=0)
    if fixed:  # supervised separation: W given and fixed
        W = np.random.default_rng(0).random((V.shape[0], k)).astype(V.dtype)
        kw.update(W=W, fixed_W=True)
    else:
        kw.update(n_components=k, init=init)
    try:
        result = fit_nmf(V, **kw)
    except ParameterError as exc:
        assert "\n" not in str(exc)
        return
    assert result.W.shape == (V.shape[0], k) and result.H.shape == (k, V.shape[1])
    for X in (result.W, result.H, result.losses):
        assert np.isfinite(X).all()
    assert (result.W >= 0).all() and (result.H >= 0).all()


@pytest.mark.parametrize("beta", BETAS)
@pytest.mark.parametrize(
    "V",
    [
        np.zeros((4, 5), np.float32),
        np.full((4, 5), 1e-45, np.float32),
        np.array([[0.0, 1e30], [1e-30, 0.0]]),
        np.full((4, 5), 3e38, np.float32),
        np.random.default_rng(0).random((6, 6)).astype(np.float32) * np.float32(1e20),
    ],
    ids=["zeros", "denormal", "mixed-float64", "near-max-float32", "1e20-float32"],
)
def test_fit_nmf_extreme_matrices(V: np.ndarray, beta: float) -> None:
    for kw in ({"n_components": 2}, {"W": np.ones((V.shape[0], 2), V.dtype), "fixed_W": True}):
        try:
            result = fit_nmf(V, beta=beta, max_iter=10, random_state=0, **kw)
        except ParameterError:
            continue
        assert np.isfinite(result.W).all() and np.isfinite(result.H).all()
        assert np.isfinite(result.losses).all()
        assert (result.W >= 0).all() and (result.H >= 0).all()
