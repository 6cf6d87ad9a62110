"""nmfsep.audio: loading, writing (atomic), resampling, finding files, and bad input."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nmfsep import audio
from nmfsep.audio import (
    AUDIO_EXTENSIONS,
    TEMP_SUFFIX,
    AudioInfo,
    audio_info,
    cleanup_temp_files,
    find_audio_files,
    load_audio,
    resample,
    write_audio,
)
from nmfsep.errors import AudioError, ParameterError

IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


def _sine(sr: int, seconds: float, freq: float = 440.0, channels: int = 1) -> np.ndarray:
    t = np.arange(int(sr * seconds)) / sr
    rows = [0.5 * np.sin(2 * np.pi * freq * (c + 1) * t) for c in range(channels)]
    return np.asarray(rows, dtype=np.float32)


def _assert_one_line(err: BaseException, path: Path, *needles: str) -> None:
    text = str(err)
    assert "\n" not in text and "\r" not in text
    assert text.startswith(str(path)), text
    for needle in needles:
        assert needle.lower() in text.lower(), text


def _listing(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


# ---------------------------------------------------------------------------------------------
# round trips


QUANT = {"PCM_U8": 1 / 64, "PCM_16": 1 / 16000, "PCM_24": 1e-6, "FLOAT": 0.0, "DOUBLE": 0.0}


@pytest.mark.parametrize("channels", [1, 2, 6])
@pytest.mark.parametrize("subtype", list(QUANT))
def test_load_wav_bit_depths_and_channels(
    write_wav: Callable[..., Path], channels: int, subtype: str
) -> None:
    y = _sine(16000, 0.25, channels=channels)
    path = write_wav(f"x_{subtype}_{channels}.wav", y, 16000, subtype=subtype)
    out, sr = load_audio(path)
    assert sr == 16000
    assert out.dtype == np.float32 and out.ndim == 2 and out.flags.c_contiguous
    assert out.shape == y.shape
    np.testing.assert_allclose(out, y, atol=QUANT[subtype] + 1e-7)
    info = audio_info(path)
    assert info == AudioInfo(16000, channels, y.shape[1], y.shape[1] / 16000, "WAV", subtype)


@pytest.mark.parametrize("sr", [8000, 96000, 192000])
def test_load_extreme_sample_rates(write_wav: Callable[..., Path], sr: int) -> None:
    y = _sine(sr, 0.1, freq=1000.0, channels=2)
    path = write_wav(f"r{sr}.wav", y, sr, subtype="PCM_24")
    out, got_sr = load_audio(path)
    assert got_sr == sr and out.shape == y.shape


def test_load_mono_downmix_and_offset_duration(write_wav: Callable[..., Path]) -> None:
    y = np.stack([np.full(16000, 0.5, np.float32), np.full(16000, -0.25, np.float32)])
    path = write_wav("st.wav", y, 16000, subtype="FLOAT")
    mono, _ = load_audio(path, mono=True)
    assert mono.shape == (1, 16000)
    np.testing.assert_allclose(mono, 0.125)
    part, _ = load_audio(path, offset=0.25, duration=0.5)
    assert part.shape == (2, 8000)
    tail, _ = load_audio(path, offset=0.75)
    assert tail.shape == (2, 4000)
    longer, _ = load_audio(path, duration=10.0)
    assert longer.shape == (2, 16000)
    with pytest.raises(AudioError, match="past the end"):
        load_audio(path, offset=2.0)
    for bad in (dict(offset=-1.0), dict(duration=0.0), dict(duration=float("nan"))):
        with pytest.raises(ParameterError):
            load_audio(path, **bad)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("ext", "subtype", "atol"),
    [("wav", None, 1 / 16000), ("flac", None, 1 / 16000), ("wav", "FLOAT", 0.0)],
)
@pytest.mark.parametrize("channels", [1, 2, 6])
def test_write_then_load_round_trip(
    tmp_path: Path, ext: str, subtype: str | None, atol: float, channels: int
) -> None:
    y = _sine(22050, 0.2, channels=channels)
    path = write_audio(tmp_path / f"out.{ext}", y, 22050, subtype=subtype)
    assert path == tmp_path / f"out.{ext}"
    out, sr = load_audio(path)
    assert sr == 22050 and out.shape == y.shape
    np.testing.assert_allclose(out, y, atol=atol + 1e-7)
    info = audio_info(path)
    assert info.subtype == (subtype or "PCM_16")
    assert info.format == ext.upper()
    assert _listing(tmp_path) == [f"out.{ext}"]


def test_write_ogg_and_mp3_lossy(tmp_path: Path) -> None:
    y = _sine(44100, 0.5, freq=440.0, channels=2)
    path = write_audio(tmp_path / "out.ogg", y, 44100)
    info = audio_info(path)
    assert (info.format, info.subtype, info.channels, info.sr) == ("OGG", "VORBIS", 2, 44100)
    out, _ = load_audio(path)
    assert out.shape == y.shape
    corr = np.corrcoef(out[0, 2000:-2000], y[0, 2000:-2000])[0, 1]
    assert corr > 0.95
    if "mp3" in AUDIO_EXTENSIONS:
        path = write_audio(tmp_path / "out.mp3", y, 44100)
        out, sr = load_audio(path)
        assert sr == 44100 and out.shape[0] == 2 and out.shape[1] > 0.9 * y.shape[1]


def test_write_1d_clipping_and_float_subtype(tmp_path: Path) -> None:
    y = np.array([0.0, 0.5, 1.5, -3.0, -1.0], dtype=np.float64)
    plans: list = []
    out, _ = load_audio(write_audio(tmp_path / "a.wav", y, 8000, clip_mode="clamp",
                                    on_clip=plans.append))  # fmt: skip
    assert out.shape == (1, 5)
    np.testing.assert_allclose(out[0], [0.0, 0.5, 32767 / 32768, -1.0, -1.0], atol=1e-4)
    assert [p.action for p in plans] == ["clamp"]
    # default: a WAV that would clip is written as float (the samples kept exactly)
    out, _ = load_audio(write_audio(tmp_path / "f.wav", y, 8000, on_clip=plans.append))
    np.testing.assert_allclose(out[0], y)
    assert audio_info(tmp_path / "f.wav").subtype == "FLOAT" and plans[-1].action == "float"
    # rescale: the gain that brings the peak to full scale
    out, _ = load_audio(write_audio(tmp_path / "r.wav", y, 8000, clip_mode="rescale"))
    np.testing.assert_allclose(out[0], y / 3.0, atol=1e-4)
    # within full scale: PCM_16 as asked, no callback
    n = len(plans)
    write_audio(tmp_path / "ok.wav", y / 3.0, 8000, on_clip=plans.append)
    assert audio_info(tmp_path / "ok.wav").subtype == "PCM_16" and len(plans) == n
    out, _ = load_audio(write_audio(tmp_path / "b.wav", y, 8000, subtype="FLOAT"))
    np.testing.assert_allclose(out[0], y)
    out, _ = load_audio(write_audio(tmp_path / "c.raw.bin", y, 8000, format="flac"))
    assert audio_info(tmp_path / "c.raw.bin").format == "FLAC"


def test_write_creates_parents_and_replaces(tmp_path: Path) -> None:
    dest = tmp_path / "a" / "b" / "c.wav"
    write_audio(dest, np.zeros((2, 100), np.float32), 8000)
    write_audio(dest, np.zeros((1, 50), np.float32), 8000)
    assert audio_info(dest).frames == 50 and audio_info(dest).channels == 1
    assert _listing(dest.parent) == ["c.wav"]


def test_write_zero_samples_is_allowed(tmp_path: Path) -> None:
    dest = write_audio(tmp_path / "empty.wav", np.zeros((1, 0), np.float32), 8000)
    assert audio_info(dest).frames == 0


def test_write_parameter_errors(tmp_path: Path) -> None:
    y = np.zeros((1, 10), np.float32)
    with pytest.raises(ParameterError, match="extension"):
        write_audio(tmp_path / "x.xyz", y, 8000)
    with pytest.raises(ParameterError, match="subtype"):
        write_audio(tmp_path / "x.wav", y, 8000, subtype="VORBIS")
    with pytest.raises(ParameterError, match="sr"):
        write_audio(tmp_path / "x.wav", y, 0)
    with pytest.raises(ParameterError, match="shape"):
        write_audio(tmp_path / "x.wav", np.zeros((1, 2, 3), np.float32), 8000)
    with pytest.raises(ParameterError, match="floating"):
        write_audio(tmp_path / "x.wav", np.zeros((1, 3), np.int16), 8000)
    assert _listing(tmp_path) == []


# ---------------------------------------------------------------------------------------------
# atomic writes


def test_temp_file_is_hidden_and_not_named_like_the_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[str] = []
    real_replace = os.replace

    def spy(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        seen.append(os.fspath(src))
        assert Path(src).exists()
        real_replace(src, dst)

    monkeypatch.setattr(audio.os, "replace", spy)
    write_audio(tmp_path / "song.wav", np.zeros((1, 10), np.float32), 8000)
    (tmp,) = seen
    name = Path(tmp).name
    assert Path(tmp).parent == tmp_path
    assert name.startswith(".song.wav.") and name.endswith(TEMP_SUFFIX)
    assert not name.endswith(".wav")
    assert _listing(tmp_path) == ["song.wav"]


@pytest.mark.parametrize("exc_type", [RuntimeError, OSError, KeyboardInterrupt])
def test_failed_write_leaves_no_temp_and_keeps_old_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, exc_type: type[BaseException]
) -> None:
    dest = tmp_path / "out.wav"
    write_audio(dest, np.full((1, 100), 0.25, np.float32), 8000)
    before = dest.read_bytes()
    calls = {"n": 0}
    real_write = sf.SoundFile.write

    def failing_write(self: sf.SoundFile, data: np.ndarray) -> None:
        calls["n"] += 1
        real_write(self, data)  # some data really reaches the temp file first
        raise exc_type("simulated failure")

    monkeypatch.setattr(sf.SoundFile, "write", failing_write)
    expected: type[BaseException] = (
        KeyboardInterrupt if exc_type is KeyboardInterrupt else AudioError
    )
    with pytest.raises(expected) as info:
        write_audio(dest, np.zeros((2, 1000), np.float32), 8000)
    assert calls["n"] == 1
    if expected is AudioError:
        _assert_one_line(info.value, dest, "cannot write")
    assert _listing(tmp_path) == ["out.wav"]
    assert dest.read_bytes() == before


def test_nan_samples_are_refused_before_anything_is_kept(tmp_path: Path) -> None:
    y = np.zeros((1, 200_000), np.float32)
    y[0, -1] = np.nan  # in the last block: earlier blocks were already written to the temp file
    with pytest.raises(AudioError, match="NaN"):
        write_audio(tmp_path / "x.wav", y, 8000)
    assert _listing(tmp_path) == []


def test_output_directory_problems(tmp_path: Path) -> None:
    y = np.zeros((1, 10), np.float32)
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    with pytest.raises(AudioError) as info:
        write_audio(blocker / "sub" / "x.wav", y, 8000)
    _assert_one_line(info.value, blocker, "not a directory")
    (tmp_path / "adir.wav").mkdir()
    with pytest.raises(AudioError) as info:
        write_audio(tmp_path / "adir.wav", y, 8000)
    _assert_one_line(info.value, tmp_path / "adir.wav", "directory")
    assert blocker.read_text() == "x"


@pytest.mark.skipif(IS_ROOT or os.name != "posix", reason="root ignores permissions")
def test_unwritable_directory(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        with pytest.raises(AudioError) as info:
            write_audio(locked / "x.wav", np.zeros((1, 10), np.float32), 8000)
        assert "permission denied" in str(info.value)
    finally:
        locked.chmod(0o700)


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_cleanup_temp_files(tmp_path: Path) -> None:
    host = audio._host_tag()
    dead = _dead_pid()
    (tmp_path / "sub").mkdir()
    stale = [
        tmp_path / f".a.wav.{host}-{dead}-0123abcd{TEMP_SUFFIX}",
        tmp_path / "sub" / f".b.wav.{host}-{dead}-0123abcd{TEMP_SUFFIX}",
        tmp_path / f".c.wav.ffffff-1-0123abcd{TEMP_SUFFIX}",  # other host, old
    ]
    kept = [
        # not nmfsep's own names: a user's files, whatever they end with
        tmp_path / f".legacy{TEMP_SUFFIX}",
        tmp_path / f"draft{TEMP_SUFFIX}",
        tmp_path / f".d.wav.{host}-{os.getpid()}-0123abcd{TEMP_SUFFIX}",  # live writer
        tmp_path / f".e.wav.ffffff-1-0123abcd{TEMP_SUFFIX}",  # other host, recent
        tmp_path / "song.wav",
    ]
    for p in stale + kept:
        p.write_bytes(b"x")
    old = time.time() - 2 * 3600
    os.utime(stale[2], (old, old))
    # each directory alone: the one in sub/ goes only when sub/ is named
    assert cleanup_temp_files(tmp_path) == 2
    assert not stale[0].exists() and stale[1].exists() and not stale[2].exists()
    assert cleanup_temp_files([tmp_path / "sub", tmp_path]) == 1
    assert all(not p.exists() for p in stale)
    assert all(p.exists() for p in kept)
    assert cleanup_temp_files(tmp_path / "missing") == 0


# ---------------------------------------------------------------------------------------------
# resampling


@pytest.mark.parametrize(("orig", "target"), [(44100, 16000), (8000, 48000), (22050, 22050)])
def test_resample_lengths_dtype_and_content(orig: int, target: int) -> None:
    y = _sine(orig, 0.5, freq=300.0, channels=2)
    out = resample(y, orig, target)
    assert out.dtype == np.float32
    assert out.shape == (2, int(np.ceil(y.shape[1] * target / orig)))
    ref = _sine(target, out.shape[1] / target, freq=300.0, channels=2)
    n = min(ref.shape[1], out.shape[1])
    np.testing.assert_allclose(out[:, 100 : n - 100], ref[:, 100 : n - 100], atol=2e-3)
    assert resample(y[:, :0], orig, target).shape == (2, 0)
    assert resample(y[0, :1], orig, target).ndim == 1


def test_resample_errors() -> None:
    with pytest.raises(ParameterError):
        resample(np.zeros(10, np.float32), 0, 8000)
    with pytest.raises(ParameterError):
        resample(np.zeros(10, np.float32), 8000, 1.5)  # type: ignore[arg-type]
    with pytest.raises(ParameterError):
        resample(np.zeros(10, np.int16), 8000, 16000)


def test_load_with_resampling(write_wav: Callable[..., Path]) -> None:
    path = write_wav("r.wav", _sine(44100, 1.0, channels=2), 44100)
    y, sr = load_audio(path, sr=16000)
    assert sr == 16000 and y.shape == (2, 16000) and y.dtype == np.float32
    with pytest.raises(ParameterError):
        load_audio(path, sr=-5)


# ---------------------------------------------------------------------------------------------
# finding files


def test_find_audio_files(tmp_path: Path) -> None:
    for name in ["b.wav", "a.FLAC", "c.ogg", ".hidden.wav", "notes.txt", f".x.wav{TEMP_SUFFIX}"]:
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "d.wav").write_bytes(b"x")
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "e.wav").write_bytes(b"x")
    (tmp_path / "dir.wav").mkdir()
    assert [p.name for p in find_audio_files(tmp_path)] == ["a.FLAC", "b.wav", "c.ogg"]
    found = find_audio_files(tmp_path, recursive=True)
    assert [p.relative_to(tmp_path).as_posix() for p in found] == [
        "a.FLAC",
        "b.wav",
        "c.ogg",
        "sub/d.wav",
    ]
    with pytest.raises(AudioError, match="no such directory"):
        find_audio_files(tmp_path / "missing")
    with pytest.raises(AudioError, match="not a directory"):
        find_audio_files(tmp_path / "b.wav")


def test_audio_extensions() -> None:
    assert {"wav", "flac", "ogg"} <= AUDIO_EXTENSIONS
    assert all(e == e.lower() and not e.startswith(".") for e in AUDIO_EXTENSIONS)
    assert ("mp3" in AUDIO_EXTENSIONS) == ("MP3" in sf.available_formats())
    assert "raw" not in AUDIO_EXTENSIONS


# ---------------------------------------------------------------------------------------------
# the bad-input matrix


def _wav_bytes(n_frames: int = 8000, channels: int = 1, subtype: str = "PCM_16") -> bytes:
    import io

    buf = io.BytesIO()
    sf.write(buf, np.zeros((n_frames, channels), np.float32), 8000, subtype=subtype, format="WAV")
    return buf.getvalue()


def _claim_one_hour(data: bytes) -> bytes:
    """Rewrite a 16-bit mono 8 kHz WAV's sizes so that the header claims one hour of audio."""
    pos = data.index(b"data")
    claimed = 3600 * 8000 * 2
    out = bytearray(data)
    out[pos + 4 : pos + 8] = struct.pack("<I", claimed)
    out[4:8] = struct.pack("<I", claimed + pos + 8 - 8)
    return bytes(out)


def _float_wav_with(value: float) -> bytes:
    import io

    y = np.zeros((1000, 2), np.float32)
    y[500, 1] = value
    buf = io.BytesIO()
    sf.write(buf, y, 8000, subtype="FLOAT", format="WAV")
    return buf.getvalue()


def _make_bad(kind: str, tmp_path: Path) -> Path:
    path = tmp_path / f"{kind}.wav"
    if kind == "missing":
        return path
    if kind == "directory":
        path.mkdir()
    elif kind == "zero_bytes":
        path.write_bytes(b"")
    elif kind == "text":
        path.write_text("this is not audio\n" * 20)
    elif kind.startswith("header_"):
        path.write_bytes(_wav_bytes()[: int(kind.split("_")[1])])
    elif kind == "no_samples":
        path.write_bytes(_wav_bytes(0))
    elif kind == "nan":
        path.write_bytes(_float_wav_with(float("nan")))
    elif kind == "inf":
        path.write_bytes(_float_wav_with(float("-inf")))
    elif kind == "cut_flac":
        path = tmp_path / "cut.flac"
        import io

        buf = io.BytesIO()
        sf.write(buf, _sine(16000, 1.0).T, 16000, format="FLAC")
        data = buf.getvalue()
        path.write_bytes(data[: len(data) // 2])
    elif kind == "wav_in_parent_file":
        (tmp_path / "plain").write_text("x")
        path = tmp_path / "plain" / "x.wav"
    else:  # pragma: no cover
        raise AssertionError(kind)
    return path


BAD_INPUTS = {
    "missing": "no such file",
    "directory": "is a directory",
    "zero_bytes": "empty",
    "text": "not an audio file",
    "header_12": "malformed or truncated audio header",
    "header_20": "malformed or truncated audio header",
    "header_30": "malformed or truncated audio header",
    "no_samples": "no audio samples",
    "nan": "contains NaN or infinite samples",
    "inf": "contains NaN or infinite samples",
    "cut_flac": "corrupt or truncated",
    "wav_in_parent_file": "no such file",
}


@pytest.mark.parametrize("kind", list(BAD_INPUTS))
def test_bad_input_matrix_load_audio(kind: str, tmp_path: Path) -> None:
    path = _make_bad(kind, tmp_path)
    before = path.read_bytes() if path.is_file() else None
    with pytest.raises(AudioError) as info:
        load_audio(path)
    _assert_one_line(info.value, path, BAD_INPUTS[kind])
    assert info.value.path == str(path)
    if before is not None:
        assert path.read_bytes() == before  # inputs are never modified


@pytest.mark.parametrize(
    "kind", ["missing", "directory", "zero_bytes", "text", "header_12", "wav_in_parent_file"]
)
def test_bad_input_matrix_audio_info(kind: str, tmp_path: Path) -> None:
    path = _make_bad(kind, tmp_path)
    with pytest.raises(AudioError) as info:
        audio_info(path)
    _assert_one_line(info.value, path, BAD_INPUTS[kind])


@pytest.mark.skipif(IS_ROOT or os.name != "posix", reason="root ignores permissions")
def test_unreadable_file(tmp_path: Path) -> None:
    path = tmp_path / "locked.wav"
    path.write_bytes(_wav_bytes())
    path.chmod(0)
    try:
        with pytest.raises(AudioError) as info:
            load_audio(path)
        _assert_one_line(info.value, path, "permission denied")
    finally:
        path.chmod(0o600)


def test_header_claiming_an_hour_reads_what_is_there(tmp_path: Path) -> None:
    path = tmp_path / "hour.wav"
    path.write_bytes(_claim_one_hour(_wav_bytes(8000)))
    info = audio_info(path)
    assert info.truncated and info.frames == 8000 and info.duration == 1.0
    y, sr = load_audio(path)
    assert y.shape == (1, 8000) and sr == 8000
    assert not audio_info(_make_bad("nan", tmp_path)).truncated


def test_header_with_partial_data(tmp_path: Path) -> None:
    data = _wav_bytes(8000, channels=2)
    path = tmp_path / "partial.wav"
    path.write_bytes(data[: 44 + 4 * 1000 + 2])  # 1000 whole frames and half a frame
    info = audio_info(path)
    assert info.truncated and info.frames == 1000
    y, _ = load_audio(path)
    assert y.shape == (2, 1000)


# ---------------------------------------------------------------------------------------------
# fuzzing


@pytest.fixture(scope="module")
def fuzz_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz_audio")


def _check_loader(path: Path) -> None:
    try:
        y, sr = load_audio(path)
    except AudioError as exc:
        assert "\n" not in str(exc)
        return
    assert y.dtype == np.float32 and y.ndim == 2 and y.shape[1] > 0 and sr > 0
    assert np.isfinite(y).all()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.binary(max_size=600))
def test_fuzz_random_bytes(fuzz_dir: Path, data: bytes) -> None:
    path = fuzz_dir / "random.wav"
    path.write_bytes(data)
    _check_loader(path)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    base=st.sampled_from(["PCM_16", "PCM_U8", "FLOAT", "flac"]),
    cut=st.integers(0, 400),
    flips=st.lists(st.tuples(st.integers(0, 399), st.integers(0, 255)), max_size=8),
)
def test_fuzz_damaged_real_files(
    fuzz_dir: Path, base: str, cut: int, flips: list[tuple[int, int]]
) -> None:
    import io

    buf = io.BytesIO()
    y = _sine(8000, 0.02, channels=2).T
    if base == "flac":
        sf.write(buf, y, 8000, format="FLAC")
    else:
        sf.write(buf, y, 8000, subtype=base, format="WAV")
    data = bytearray(buf.getvalue()[: max(cut, 1)] if cut < 400 else buf.getvalue())
    for pos, value in flips:
        if pos < len(data):
            data[pos] = value
    path = fuzz_dir / ("damaged.flac" if base == "flac" else "damaged.wav")
    path.write_bytes(bytes(data))
    _check_loader(path)


# ---------------------------------------------------------------------------------------------
# permissions simulated (the test suite may run as root, which ignores file modes)


def test_simulated_unreadable_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "locked.wav"
    path.write_bytes(_wav_bytes())

    def denied(*args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(audio, "open", denied, raising=False)
    for func in (load_audio, audio_info):
        with pytest.raises(AudioError) as info:
            func(path)
        _assert_one_line(info.value, path, "permission denied")


def test_simulated_unwritable_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_open = os.open

    def guarded(path: str | os.PathLike[str], flags: int, mode: int = 0o777) -> int:
        if os.fspath(path).endswith(TEMP_SUFFIX):
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return real_open(path, flags, mode)

    monkeypatch.setattr(audio.os, "open", guarded)
    with pytest.raises(AudioError) as info:
        write_audio(tmp_path / "x.wav", np.zeros((1, 10), np.float32), 8000)
    _assert_one_line(info.value, tmp_path / "x.wav", "permission denied")
    assert TEMP_SUFFIX not in str(info.value)
    monkeypatch.undo()
    assert _listing(tmp_path) == []


def test_tiny_and_silent_files_are_valid(write_wav: Callable[..., Path]) -> None:
    y, _ = load_audio(write_wav("tiny.wav", np.full((1, 10), 0.5, np.float32), 8000))
    assert y.shape == (1, 10)
    y, _ = load_audio(write_wav("silent.wav", np.zeros((2, 8000), np.float32), 8000))
    assert y.shape == (2, 8000) and not y.any()


@pytest.mark.parametrize(
    "raw",
    [
        "Error opening 'x/y.opus': Error : Opus only supports sample rates of 8000",
        "Error opening <_io.FileIO name=5 mode='rb+' closefd=True>: Error : Opus only supports"
        " sample rates of 8000",
    ],
)
def test_libsndfile_detail_drops_the_file_prefix(raw: str) -> None:
    from nmfsep.audio import _sf_detail

    assert _sf_detail(RuntimeError(raw)).startswith("Opus only supports sample rates")


@pytest.mark.parametrize("ext", ["wav", "aiff"])
def test_float_files_carry_no_time_of_writing(tmp_path: Path, ext: str) -> None:
    # libsndfile's PEAK chunk holds a timestamp: the same samples were other bytes a second later
    y = (0.1 * np.random.default_rng(0).standard_normal((1, 800))).astype(np.float32)
    write_audio(tmp_path / f"a.{ext}", y, 8000, subtype="FLOAT")
    assert b"PEAK" not in (tmp_path / f"a.{ext}").read_bytes()
    back, _ = load_audio(tmp_path / f"a.{ext}")
    np.testing.assert_array_equal(back, y)


def test_atomic_open_without_replace_keeps_a_file_that_appeared(tmp_path: Path) -> None:
    """Existence is checked when a run starts; a file another run put there meanwhile was
    replaced at the rename (train -o, --save-model). ``replace=False`` keeps it."""
    dest = tmp_path / "model.npz"
    with pytest.raises(audio.AudioError, match="exists: another run wrote it while this one"):
        with audio.atomic_open(dest, replace=False) as fh:
            fh.write(b"ours")
            dest.write_bytes(b"theirs")  # the other run finishes first
    assert dest.read_bytes() == b"theirs"
    assert [p.name for p in tmp_path.iterdir()] == ["model.npz"]  # no temporary file left
    with audio.atomic_open(tmp_path / "new.npz", replace=False) as fh:
        fh.write(b"ours")
    assert (tmp_path / "new.npz").read_bytes() == b"ours"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.npz", "new.npz"]
