"""Hostile inputs for the audio layer (nmfsep.audio + nmfsep.limits): headers, streams and
devices, names, file systems, write targets, clipping, header fuzzing.

The contract, everywhere: a clean :class:`AudioError` / :class:`ParameterError` whose message
is one line naming the file, or correct output; inputs unchanged (hashed before and after); no
temporary file left; memory bounded (limits checked before allocating, and a subprocess run
under ``RLIMIT_AS``).
"""

from __future__ import annotations

import errno
import hashlib
import io
import os
import socket
import stat
import struct
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import nmfsep.audio as audio
from nmfsep import limits
from nmfsep.audio import (
    TEMP_SUFFIX,
    Protected,
    atomic_open,
    audio_info,
    load_audio,
    plan_clip,
    write_audio,
)
from nmfsep.errors import AudioError, NmfsepError, ParameterError

SR = 8000
IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


def wav_bytes(n: int = 4000, sr: int = SR, channels: int = 1, subtype: str = "PCM_16") -> bytes:
    t = np.arange(n) / sr
    y = np.stack([0.3 * np.sin(2 * np.pi * 220 * (c + 1) * t) for c in range(channels)], axis=1)
    buf = io.BytesIO()
    sf.write(buf, y.astype(np.float32), sr, subtype=subtype, format="WAV")
    return buf.getvalue()


def flac_bytes(n: int = 4000, sr: int = SR) -> bytes:
    buf = io.BytesIO()
    y = 0.3 * np.sin(2 * np.pi * 220 * np.arange(n) / sr)
    sf.write(buf, y.astype(np.float32), sr, format="FLAC", subtype="PCM_16")
    return buf.getvalue()


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def temps(directory: Path) -> list[Path]:
    return [p for p in directory.rglob("*") if p.name.endswith(TEMP_SUFFIX)]


def assert_clean(err: NmfsepError, path: Path | str, *needles: str) -> None:
    text = str(err)
    assert "\n" not in text and "\r" not in text, text
    assert text.startswith(os.fspath(path)) or err.path == os.fspath(path), text
    for needle in needles:
        assert needle.lower() in text.lower(), text


def read_contract(path: Path) -> tuple[np.ndarray, int] | AudioError:
    """load_audio and audio_info: a clean AudioError, or finite float32 audio; input unchanged."""
    before = digest(path) if path.is_file() else None
    try:
        y, sr = load_audio(path)
    except AudioError as exc:
        assert_clean(exc, path)
        with pytest.raises(AudioError):
            info = audio_info(path)
            if info.frames == 0:  # a header audio_info accepts but that holds no samples
                raise AudioError("no samples", path=path) from None
            raise AudioError("audio_info accepted what load_audio refused", path=path) from None
        if before is not None:
            assert digest(path) == before
        return exc
    assert y.dtype == np.float32 and y.ndim == 2 and np.isfinite(y).all()
    assert 1 <= y.shape[0] <= limits.MAX_CHANNELS
    assert limits.MIN_SAMPLE_RATE <= sr <= limits.MAX_SAMPLE_RATE
    if before is not None:
        assert digest(path) == before
    return y, sr


# ---------------------------------------------------------------------------------------------
# headers


def _set_u32(data: bytes, pos: int, value: int) -> bytes:
    out = bytearray(data)
    out[pos : pos + 4] = struct.pack("<I", value)
    return bytes(out)


def _set_u16(data: bytes, pos: int, value: int) -> bytes:
    out = bytearray(data)
    out[pos : pos + 2] = struct.pack("<H", value)
    return bytes(out)


def _flac_rate(data: bytes, rate: int) -> bytes:
    out = bytearray(data)
    i = 8 + 10  # STREAMINFO: 20-bit sample rate after min/max block and frame sizes
    packed = (rate << 4) | (out[i + 2] & 0x0F)
    out[i : i + 3] = packed.to_bytes(3, "big")
    return bytes(out)


RATE_CASES = {
    "rate 0": (0, "sample rate 0 Hz in the header is not valid"),
    "rate 1": (1, "sample rate 1 Hz in the header is below the minimum of 1000 Hz"),
    "rate 8": (8, "sample rate 8 Hz in the header is below the minimum of 1000 Hz"),
    "rate 999": (999, "below the minimum of 1000 Hz"),
    "rate 2^31-1": (2**31 - 1, "sample rate 2147483647 Hz in the header is over the limit"),
    "rate 4 GHz": (4_000_000_000, "sample rate 4000000000 Hz in the header is over the limit"),
    "rate 2^32-1": (2**32 - 1, "over the limit of 768000 Hz"),
}


@pytest.mark.parametrize("case", list(RATE_CASES))
def test_wav_header_rate(case: str, tmp_path: Path) -> None:
    rate, needle = RATE_CASES[case]
    path = tmp_path / "rate.wav"
    path.write_bytes(_set_u32(wav_bytes(), 24, rate))
    err = read_contract(path)
    assert isinstance(err, AudioError)
    assert_clean(err, path, needle)
    assert "SF_INFO" not in str(err) and "internal" not in str(err).lower()


@pytest.mark.parametrize("rate", [0, 8, 999])
def test_flac_header_rate(rate: int, tmp_path: Path) -> None:
    path = tmp_path / "rate.flac"
    path.write_bytes(_flac_rate(flac_bytes(), rate))
    err = read_contract(path)
    assert isinstance(err, AudioError)
    assert "SF_INFO" not in str(err)


@pytest.mark.parametrize(
    ("channels", "needle"),
    [(0, "0 channels"), (65535, "over the limit of 256"), (300, "over the limit of 256")],
)
def test_wav_header_channels(channels: int, needle: str, tmp_path: Path) -> None:
    path = tmp_path / "ch.wav"
    path.write_bytes(_set_u16(wav_bytes(), 22, channels))
    err = read_contract(path)
    assert isinstance(err, AudioError)
    assert_clean(err, path, needle)


@pytest.mark.parametrize("claimed", [2**31 - 1, 2**32 - 1, 10**9])
def test_wav_header_claims_huge_length_reads_what_is_there(claimed: int, tmp_path: Path) -> None:
    data = wav_bytes(4000)
    pos = data.index(b"data")
    path = tmp_path / "long.wav"
    path.write_bytes(_set_u32(_set_u32(data, pos + 4, claimed), 4, min(claimed + pos, 2**32 - 1)))
    y, sr = read_contract(path)  # type: ignore[misc]
    assert sr == SR and y.shape == (1, 4000)


@pytest.mark.parametrize("keep", [44, 45, 100, 1000, 4044])
def test_truncated_data(keep: int, tmp_path: Path) -> None:
    path = tmp_path / "cut.wav"
    path.write_bytes(wav_bytes(4000)[:keep])
    out = read_contract(path)
    if not isinstance(out, AudioError):
        assert out[0].shape[1] <= 4000


@pytest.mark.parametrize("seed", range(6))
def test_random_bytes(seed: int, tmp_path: Path) -> None:
    rng = np.random.default_rng(seed)
    path = tmp_path / f"noise{seed}.wav"
    path.write_bytes(rng.integers(0, 256, 2000 + 500 * seed, dtype=np.uint8).tobytes())
    assert isinstance(read_contract(path), AudioError)


@pytest.mark.parametrize("magic", [b"RIFF", b"fLaC", b"FORM", b"OggS"])
def test_magic_then_garbage(magic: bytes, tmp_path: Path) -> None:
    path = tmp_path / "garbage.wav"
    path.write_bytes(magic + bytes(range(256)) * 4)
    assert isinstance(read_contract(path), AudioError)


def test_flac_of_unknown_length_is_read_fully(tmp_path: Path) -> None:
    """What ``ffmpeg ... -f flac -`` writes: STREAMINFO total samples 0 (unknown)."""

    import threading

    x = (0.3 * np.sin(np.arange(50_000) / 7.0)).astype(np.float32)
    r, w = os.pipe()  # a real pipe: libsndfile cannot seek back to fill in the length
    chunks: list[bytes] = []
    reader = threading.Thread(target=lambda: chunks.extend(iter(lambda: os.read(r, 65536), b"")))
    reader.start()
    try:
        with sf.SoundFile(
            w, "w", samplerate=16000, channels=1, format="FLAC", closefd=False
        ) as out:
            out.write(x)
    finally:
        os.close(w)
        reader.join(30)
        os.close(r)

    class _Data:
        data = b"".join(chunks)

    pipe = _Data()
    path = tmp_path / "stream.flac"
    path.write_bytes(bytes(pipe.data))
    assert int.from_bytes(pipe.data[8 + 13 : 8 + 18], "big") & ((1 << 36) - 1) == 0
    info = audio_info(path)
    assert info.frames == 50_000 and info.sr == 16000
    y, _ = load_audio(path)
    assert y.shape == (1, 50_000) and np.abs(y[0] - x).max() < 1e-4
    # cut in half: what is there is read (the truncated-file policy), nothing invented
    cut = tmp_path / "cut.flac"
    cut.write_bytes(bytes(pipe.data[: len(pipe.data) // 2]))
    y2, _ = load_audio(cut)
    assert 0 < y2.shape[1] < 50_000
    np.testing.assert_allclose(y2[0], x[: y2.shape[1]], atol=1e-4)


def test_memory_bounded_under_rlimit(tmp_path: Path) -> None:
    """A 32 KB WAV claiming 2**31-1 Hz (resampled to 16 kHz), a header claiming 4 GB and a
    FLAC of unknown length, loaded in a process limited to 1 GiB of address space."""
    rate = tmp_path / "rate.wav"
    rate.write_bytes(_set_u32(wav_bytes(16000), 24, 2**31 - 1))
    data = wav_bytes(4000)
    pos = data.index(b"data")
    huge = tmp_path / "huge.wav"
    huge.write_bytes(_set_u32(data, pos + 4, 2**32 - 2))
    script = textwrap.dedent(
        f"""
        import resource, sys
        resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))
        from nmfsep.audio import load_audio
        from nmfsep.errors import AudioError
        try:
            load_audio({str(rate)!r}, sr=16000)
        except AudioError as exc:
            print("refused:", exc)
        y, sr = load_audio({str(huge)!r})
        print("read", y.shape)
        """
    )
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, env=env
    )
    assert proc.returncode == 0, proc.stderr
    assert "refused:" in proc.stdout and "over the limit" in proc.stdout
    assert "read (1, 4000)" in proc.stdout


def test_long_audio_refused_before_allocating(tmp_path: Path) -> None:
    path = tmp_path / "a.wav"
    path.write_bytes(wav_bytes(16000))
    with pytest.raises(AudioError, match="too long to load at once"):
        load_audio(path, max_seconds=1.0)
    y, _ = load_audio(path, max_seconds=None)
    assert y.shape == (1, 16000)


@pytest.mark.parametrize("sr", [0, -1, 8, 10**7, 1.5])
def test_bad_target_rate_is_a_parameter_error(sr: float, tmp_path: Path) -> None:
    path = tmp_path / "a.wav"
    path.write_bytes(wav_bytes())
    with pytest.raises(ParameterError):
        load_audio(path, sr=sr)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------
# streams and devices as input


def _make_special(kind: str, tmp_path: Path) -> Path:
    if kind == "fifo":
        path = tmp_path / "fifo.wav"
        os.mkfifo(path)
    elif kind == "dev_zero":
        path = Path("/dev/zero")
    elif kind == "dev_null":
        path = Path("/dev/null")
    elif kind == "directory":
        path = tmp_path / "dir.wav"
        path.mkdir()
    elif kind == "symlink_loop":
        path = tmp_path / "loop.wav"
        os.symlink(tmp_path / "loop2.wav", path)
        os.symlink(path, tmp_path / "loop2.wav")
    elif kind == "dangling":
        path = tmp_path / "dangling.wav"
        os.symlink(tmp_path / "nowhere.wav", path)
    elif kind == "socket":
        path = tmp_path / "sock.wav"
        s = socket.socket(socket.AF_UNIX)
        s.bind(os.fspath(path))
        s.close()
    else:  # pragma: no cover
        raise AssertionError(kind)
    return path


SPECIAL = {
    "fifo": "not a regular file (a FIFO",
    "dev_zero": "not a regular file (a character device",
    "dev_null": "not a regular file (a character device",
    "directory": "is a directory",
    "symlink_loop": "symbolic link",
    "dangling": "no such file",
    "socket": "not a regular file (a socket",
}


@pytest.mark.skipif(os.name != "posix", reason="POSIX special files")
@pytest.mark.parametrize("kind", list(SPECIAL))
def test_special_files_as_input(kind: str, tmp_path: Path) -> None:
    path = _make_special(kind, tmp_path)
    for fn in (load_audio, audio_info):
        with pytest.raises(AudioError) as info:
            fn(path)  # never blocks on a FIFO, never reads /dev/zero
        assert_clean(info.value, path, SPECIAL[kind])
        assert "empty (0 bytes)" not in str(info.value)


# ---------------------------------------------------------------------------------------------
# names


NAMES: dict[str, Callable[[Path], Path]] = {
    "non-utf8": lambda d: d / os.fsdecode(b"caf\xe9-\xff.wav"),
    "newline": lambda d: d / "two\nlines.wav",
    "leading dash": lambda d: d / "-rf.wav",
    "markup": lambda d: d / "[red]x[/x].wav",
    "unicode": lambda d: d / "東京 ☃.wav",
    "long 255": lambda d: d / ("n" * 251 + ".wav"),
    "spaces": lambda d: d / "  spaced  .wav",
}


@pytest.mark.parametrize("name", list(NAMES))
def test_odd_names_roundtrip(name: str, tmp_path: Path) -> None:
    path = NAMES[name](tmp_path)
    y = (0.2 * np.sin(np.arange(2000) / 5.0)).astype(np.float32)[None]
    assert write_audio(path, y, SR) == path
    back, sr = load_audio(path)
    assert sr == SR and np.abs(back - y).max() < 1e-4
    assert audio_info(path).frames == 2000
    assert temps(tmp_path) == []


@pytest.mark.parametrize(
    ("make", "needle"),
    [
        (lambda d: d / ("n" * 300 + ".wav"), "file name too long (304 bytes; the limit is 255)"),
        (lambda d: Path(os.fspath(d) + ("/" + "d" * 200) * 25) / "x.wav", "path too long"),
    ],
)
def test_too_long_names_are_clean_errors(make: Callable[[Path], Path], needle: str,
                                         tmp_path: Path) -> None:  # fmt: skip
    path = make(tmp_path)
    with pytest.raises(AudioError) as info:
        write_audio(path, np.zeros((1, 10), np.float32), SR)
    assert needle in str(info.value) and "\n" not in str(info.value)
    assert len(str(info.value)) < 400  # the path is shortened in the message
    with pytest.raises(AudioError) as info:
        load_audio(path)
    assert "too long" in str(info.value)


# ---------------------------------------------------------------------------------------------
# write targets and file systems


def _target(kind: str, tmp_path: Path, src: Path) -> Path:
    if kind == "fifo":
        p = tmp_path / "t.wav"
        os.mkfifo(p)
    elif kind == "char device":
        p = Path("/dev/null")
    elif kind == "directory":
        p = tmp_path / "t.wav"
        p.mkdir()
    elif kind == "socket":
        p = tmp_path / "t.wav"
        s = socket.socket(socket.AF_UNIX)
        s.bind(os.fspath(p))
        s.close()
    elif kind == "symlink to fifo":
        os.mkfifo(tmp_path / "f")
        p = tmp_path / "t.wav"
        os.symlink(tmp_path / "f", p)
    elif kind == "the input":
        p = src
    elif kind == "symlink to input":
        p = tmp_path / "t.wav"
        os.symlink(src, p)
    elif kind == "hard link to input":
        p = tmp_path / "t.wav"
        os.link(src, p)
    elif kind == "input via ..":
        p = src.parent / "sub" / ".." / src.name
        (src.parent / "sub").mkdir()
    else:  # pragma: no cover
        raise AssertionError(kind)
    return p


TARGETS = {
    "fifo": "not a regular file (a FIFO",
    "char device": "not a regular file (a character device",
    "directory": "is a directory",
    "socket": "not a regular file (a socket",
    "symlink to fifo": "not a regular file (a FIFO",
    "the input": "is an input of this command",
    "symlink to input": "is an input of this command",
    "hard link to input": "is an input of this command",
    "input via ..": "is an input of this command",
}


@pytest.mark.skipif(os.name != "posix", reason="POSIX special files")
@pytest.mark.parametrize("kind", list(TARGETS))
@pytest.mark.parametrize("how", ["write_audio", "atomic_open", "Protected"])
def test_refused_write_targets(kind: str, how: str, tmp_path: Path) -> None:
    src = tmp_path / "input.wav"
    src.write_bytes(wav_bytes())
    before = digest(src)
    target = _target(kind, tmp_path, src)
    mode = os.lstat(target).st_mode
    protect = Protected([src]) if how == "Protected" else [src]
    with pytest.raises(AudioError) as info:
        if how == "atomic_open":
            with atomic_open(target, protect=protect) as fh:
                fh.write(b"x")
        else:
            write_audio(target, np.zeros((1, 100), np.float32), SR, protect=protect)
    assert_clean(info.value, target, TARGETS[kind])
    assert digest(src) == before and os.lstat(target).st_mode == mode
    assert temps(tmp_path) == []


def test_other_regular_files_are_replaced(tmp_path: Path) -> None:
    src = tmp_path / "input.wav"
    src.write_bytes(wav_bytes())
    old = tmp_path / "old.wav"
    old.write_bytes(b"an old output")
    write_audio(old, np.zeros((1, 100), np.float32), SR, protect=[src])
    assert audio_info(old).frames == 100


FAILURES = {
    errno.ENOSPC: "no space left on device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EFBIG: "file too large for the file system",
    errno.EIO: "cannot write: input/output error (failing disk or network file system)",
}


@pytest.mark.parametrize("code", list(FAILURES))
@pytest.mark.parametrize("ext", ["wav", "flac"])
def test_disk_full_while_writing(code: int, ext: str, tmp_path: Path,
                                 monkeypatch: pytest.MonkeyPatch,
                                 capfd: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    dest = tmp_path / f"out.{ext}"
    write_audio(dest, np.full((1, 100), 0.1, np.float32), SR)
    before = digest(dest)

    def full(self: io.FileIO, data: bytes) -> int:
        if self.tell() + len(data) > 5000:
            raise OSError(code, os.strerror(code))
        return os.write(self.fileno(), data)

    monkeypatch.setattr(audio._GuardedFile, "_raw_write", full)
    y = np.random.default_rng(0).uniform(-0.5, 0.5, (2, 60_000)).astype(np.float32)
    with pytest.raises(AudioError) as info:
        write_audio(dest, y, SR)
    assert str(info.value) == f"{dest}: {FAILURES[code]}"
    _, err = capfd.readouterr()
    assert "Traceback" not in err and "cffi" not in err
    assert digest(dest) == before and temps(tmp_path) == []


def test_disk_full_in_atomic_open_body(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def full(self: io.FileIO, data: bytes) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(audio._GuardedFile, "_raw_write", full)
    dest = tmp_path / "x.bin"
    with pytest.raises(AudioError, match=r"x\.bin: no space left on device$"):
        with atomic_open(dest) as fh:
            fh.write(b"data")  # the body sees a short write; the error comes at the end
    assert not dest.exists() and temps(tmp_path) == []


@pytest.mark.skipif(IS_ROOT or os.name != "posix", reason="root ignores permissions")
def test_read_only_directory(tmp_path: Path) -> None:
    locked = tmp_path / "ro"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        with pytest.raises(AudioError, match="permission denied"):
            write_audio(locked / "x.wav", np.zeros((1, 10), np.float32), SR)
    finally:
        locked.chmod(0o755)


def test_read_only_file_system_message() -> None:
    err = audio.write_error(OSError(errno.EROFS, "Read-only file system"), Path("/ro/x.wav"),
                            AudioError)  # fmt: skip
    assert str(err) == "/ro/x.wav: cannot write: read-only file system"


# ---------------------------------------------------------------------------------------------
# clipping policy


def test_clipping_policy_sources_still_sum_to_mixture(tmp_path: Path) -> None:
    """Loud, clipped 16-bit input: with the default policy the written sources sum to the
    mixture (float WAV); with rescale and a shared peak they sum to the scaled mixture."""
    rng = np.random.default_rng(1)
    mix = np.clip(rng.standard_normal((1, 8000)) * 0.6, -1, 1).astype(np.float32)
    a = (mix * 1.7 - 0.3 * rng.standard_normal(mix.shape)).astype(np.float32)  # over full scale
    b = (mix - a).astype(np.float32)
    peak = max(float(np.abs(a).max()), float(np.abs(b).max()))
    for mode, ext in (("float", "wav"), ("rescale", "wav"), ("float", "flac")):
        plans: list = []
        paths = [tmp_path / f"{mode}-{n}.{ext}" for n in ("a", "b")]
        for p, src in zip(paths, (a, b), strict=True):
            write_audio(p, src, SR, subtype="PCM_16", clip_mode=mode, peak=peak,
                        on_clip=plans.append)  # fmt: skip
        total = load_audio(paths[0])[0] + load_audio(paths[1])[0]
        gain = plans[0].gain
        assert all(p == plans[0] for p in plans) and plans[0].action != "none"
        err = np.abs(total - gain * mix).max()
        assert err < (1e-6 if plans[0].action == "float" else 3e-4), (mode, ext, err)
        if ext == "flac":  # no float samples in FLAC: rescaled instead
            assert plans[0].action == "rescale" and gain == pytest.approx(1 / peak)
        assert plans[0].describe().startswith(f"peak {peak:.3g} is over full scale")
    plans = []
    write_audio(tmp_path / "c.wav", a, SR, clip_mode="clamp", on_clip=plans.append)
    assert plans[0].action == "clamp" and np.abs(load_audio(tmp_path / "c.wav")[0]).max() <= 1


@pytest.mark.parametrize(
    ("peak", "fmt", "subtype", "mode", "action"),
    [
        (0.5, "WAV", "PCM_16", "float", "none"),
        (1.0, "WAV", "PCM_16", "float", "none"),
        (2.0, "WAV", "FLOAT", "clamp", "none"),
        (2.0, "WAV", "PCM_24", "float", "float"),
        (2.0, "FLAC", "PCM_24", "float", "rescale"),
        (2.0, "AIFF", "PCM_16", "float", "float"),
        (2.0, "OGG", "VORBIS", "clamp", "none"),
        (2.0, "WAV", "PCM_16", "clamp", "clamp"),
    ],
)
def test_plan_clip_table(peak: float, fmt: str, subtype: str, mode: str, action: str) -> None:
    assert plan_clip(peak, format=fmt, subtype=subtype, clip_mode=mode).action == action


def test_plan_clip_refuses_bad_arguments() -> None:
    with pytest.raises(ParameterError):
        plan_clip(2.0, format="WAV", subtype="PCM_16", clip_mode="wrap")
    with pytest.raises(ParameterError):
        plan_clip(float("nan"), format="WAV", subtype="PCM_16")


def test_write_does_not_modify_the_callers_samples(tmp_path: Path) -> None:
    y = np.array([[0.0, 2.0, -3.0]], np.float32)
    copy = y.copy()
    for mode in ("float", "rescale", "clamp"):
        write_audio(tmp_path / f"{mode}.wav", y, SR, clip_mode=mode)
        np.testing.assert_array_equal(y, copy)


# ---------------------------------------------------------------------------------------------
# limits


def test_limit_helpers() -> None:
    assert limits.check_sample_rate(44100) == 44100
    with pytest.raises(ParameterError, match=r"^--sr 8 Hz is below the minimum of 1000 Hz$"):
        limits.check_sample_rate(8, what="--sr")
    with pytest.raises(ParameterError, match="over the limit"):
        limits.check_count("-k/--components", 10**9, limits.MAX_COMPONENTS)
    with pytest.raises(ParameterError, match="must be an integer"):
        limits.check_count("-k", 2.5, 10)
    with pytest.raises(AudioError, match="would need"):
        limits.check_memory("x", rows=10**6, cols=10**6, error=AudioError, path="f.wav")
    assert limits.check_memory("x", rows=10, cols=10) == 400
    assert limits.estimate_bytes(2**40, 2**40, itemsize=8) == 2**83  # exact, no overflow
    with pytest.raises(ParameterError, match="over the limit"):
        limits.check_n_fft(2**27)
    with pytest.raises(ParameterError, match="positive number of seconds"):
        limits.check_seconds(float("inf"))


def test_limits_imports_nothing_heavy() -> None:
    code = "import sys, nmfsep.limits; print('numpy' in sys.modules, 'soundfile' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.split() == ["False", "False"], out.stderr


# ---------------------------------------------------------------------------------------------
# header fuzzing


_WAV = wav_bytes(600)
_FLAC = flac_bytes(2000)


@pytest.mark.slow
@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    which=st.sampled_from(["wav", "flac"]),
    edits=st.lists(st.tuples(st.integers(0, 79), st.integers(0, 255)), min_size=1, max_size=6),
    cut=st.one_of(st.none(), st.integers(0, 3000)),
)
def test_fuzz_headers(which: str, edits: list[tuple[int, int]], cut: int | None,
                      tmp_path: Path) -> None:  # fmt: skip
    data = bytearray(_WAV if which == "wav" else _FLAC)
    for pos, value in edits:
        data[pos] = value
    if cut is not None:
        data = data[:cut]
    path = tmp_path / f"fuzz.{which}"
    path.write_bytes(bytes(data))
    out = read_contract(path)
    if not isinstance(out, AudioError):
        y, _ = out
        assert y.shape[1] <= 10**6  # never more than the file could hold


def test_no_special_file_kind_is_unnamed() -> None:
    for mode in (stat.S_IFIFO, stat.S_IFCHR, stat.S_IFBLK, stat.S_IFSOCK, stat.S_IFDIR):
        assert audio._file_kind(mode)
    assert audio._file_kind(stat.S_IFREG) is None


def test_guarded_file_writes_all_of_a_partly_written_block(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A nearly full disk writes part of a block (write(2) returns fewer bytes) and says ENOSPC
    only on the next write: the guarded file goes on with the rest, so the failure is
    remembered and named, not a short write libsndfile fails on without a reason."""
    calls: list[int] = []

    def nearly_full(self: io.FileIO, data: bytes) -> int:
        calls.append(len(data))
        if len(calls) == 1:
            return os.write(self.fileno(), bytes(data)[:100])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(audio._GuardedFile, "_raw_write", nearly_full)
    fh = audio._GuardedFile(os.open(tmp_path / "x", os.O_RDWR | os.O_CREAT, 0o600), "r+")
    try:
        assert fh.write(b"x" * 8192) == 0
        assert calls == [8192, 8092]
        assert isinstance(fh.failure, OSError) and fh.failure.errno == errno.ENOSPC
    finally:
        fh.close()
    monkeypatch.undo()
    whole = audio._GuardedFile(os.open(tmp_path / "y", os.O_RDWR | os.O_CREAT, 0o600), "r+")
    with whole:
        assert whole.write(memoryview(b"abc" * 1000)) == 3000 and whole.failure is None
    assert (tmp_path / "y").read_bytes() == b"abc" * 1000
