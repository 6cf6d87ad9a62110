"""nmfsep in pipes, through real subprocesses: stdin ('-'), --stdout, time ranges, source
selection, output formats and subtypes, --files-from -0, ffmpeg-only formats."""

from __future__ import annotations

import contextlib
import json
import os
import resource
import shutil
import struct
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
MIX = ROOT / "sample_audio" / "mix.wav"
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}


def nmfsep(
    *args: str, stdin: bytes | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "nmfsep", *args],
        input=stdin,
        capture_output=True,
        cwd=cwd,
        env=ENV,
        timeout=300,
    )


def read_bytes(data: bytes, tmp_path: Path, name: str = "out.bin") -> tuple[np.ndarray, int]:
    p = tmp_path / name
    p.write_bytes(data)
    with sf.SoundFile(p) as f:
        return f.read(dtype="float32", always_2d=True), f.samplerate


def test_stdin_to_stdout_equals_file_path(tmp_path: Path) -> None:
    piped = nmfsep("separate", "-", "--stdout", "speech", stdin=MIX.read_bytes())
    assert piped.returncode == 0, piped.stderr
    assert piped.stdout[:4] == b"RIFF"
    # streamed WAV header: sizes unknown (maximal), nothing rewritten
    assert struct.unpack("<I", piped.stdout[4:8])[0] == 0xFFFFFFFF
    assert b"ok" in piped.stderr  # messages on stderr only
    y, sr = read_bytes(piped.stdout, tmp_path)
    files = nmfsep("separate", str(MIX), "-o", str(tmp_path / "out"), "-q")
    assert files.returncode == 0, files.stderr
    ref, _ = sf.read(tmp_path / "out" / "mix" / "speech.wav", dtype="float32", always_2d=True)
    assert sr == 16000 and y.shape == ref.shape
    np.testing.assert_array_equal(y, ref)


def test_stdin_named_track_and_sources_subset(tmp_path: Path) -> None:
    r = nmfsep(
        "separate", "-", "--name", "call", "--sources", "noise", "-o", str(tmp_path), "--json",
        stdin=MIX.read_bytes(),
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    record = summary["files"][0]
    assert record["status"] == "ok" and list(record["outputs"]) == ["noise"]
    assert record["realtime"] > 0
    assert sorted(p.name for p in (tmp_path / "call").iterdir()) == ["noise.wav"]


@pytest.mark.parametrize(("fmt", "container"), [("flac", "FLAC"), ("ogg", "OGG")])
def test_stream_formats_round_trip_through_stdin(tmp_path: Path, fmt: str, container: str) -> None:
    r = nmfsep("separate", str(MIX), "--stdout", "noise", "--format", fmt, "-q")
    assert r.returncode == 0, r.stderr
    p = tmp_path / f"n.{fmt}"
    p.write_bytes(r.stdout)
    assert sf.info(p).format == container
    again = nmfsep("separate", "-", "--stdout", "speech", "-q", stdin=r.stdout)
    assert again.returncode == 0, again.stderr
    y, _ = read_bytes(again.stdout, tmp_path)
    assert abs(y.shape[0] - 108800) < 2048  # Ogg pads/trims a little


def test_time_range_formats_and_subtypes(tmp_path: Path) -> None:
    r = nmfsep(
        "separate", str(MIX), "--start", "1.5", "--duration", "2", "-o", str(tmp_path),
        "--format", "mp3", "--sources", "speech",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert [p.name for p in (tmp_path / "mix").iterdir()] == ["speech.mp3"]
    info = sf.info(tmp_path / "mix" / "speech.mp3")
    assert info.format == "MP3" and info.frames == 32000
    r = nmfsep("separate", str(MIX), "--start", "1", "--duration", "0.5", "-o", str(tmp_path / "b"),
               "--int24")  # fmt: skip
    assert r.returncode == 0, r.stderr
    out = sf.info(tmp_path / "b" / "mix" / "speech.wav")
    assert out.subtype == "PCM_24" and out.frames == 8000
    # the range equals the same range cut from the whole-file separation: with fixed bases and
    # the Wiener gain each frame is separated on its own (streaming is exact), so only the edges
    # differ (they see no context beyond the range); the built-in model's adaptive settings
    # (free bases, the tracked gain's 1.5 s noise tracker, the cluster blend's bases, the
    # stationary expert's gate) learn from the range alone, so there it is only close
    fixed = ["--free-components", "0", "--gain", "wiener", "--cluster-blend", "0"]
    fixed += ["--stationary-blend", "0"]
    for extra, inside in ((fixed, 0.999), ([], 0.9)):
        w, p = tmp_path / f"w{len(extra)}", tmp_path / f"p{len(extra)}"
        whole = nmfsep("separate", str(MIX), "-o", str(w), "--float32", "-q", *extra)
        part = nmfsep("separate", str(MIX), "--start", "2", "--duration", "1", "--float32",
                      "-o", str(p), "-q", *extra)  # fmt: skip
        assert whole.returncode == 0 and part.returncode == 0
        a, _ = sf.read(w / "mix" / "speech.wav", dtype="float32")
        b, _ = sf.read(p / "mix" / "speech.wav", dtype="float32")
        assert b.shape == (16000,)
        assert np.corrcoef(a[32000:48000][4000:12000], b[4000:12000])[0, 1] > inside, extra


def test_stdin_time_range_skips_by_reading(tmp_path: Path) -> None:
    r = nmfsep("separate", "-", "--start", "6", "--stdout", "speech", "-q", stdin=MIX.read_bytes())
    assert r.returncode == 0, r.stderr
    y, _ = read_bytes(r.stdout, tmp_path)
    assert y.shape[0] == 108800 - 96000
    past = nmfsep("separate", "-", "--start", "60", "--stdout", "speech", stdin=MIX.read_bytes())
    assert past.returncode == 1 and b"past the end" in past.stderr


def test_format_same_keeps_container_and_subtype(tmp_path: Path) -> None:
    src = tmp_path / "in.flac"
    y, sr = sf.read(MIX, dtype="float32")
    sf.write(src, y, sr, subtype="PCM_24")
    r = nmfsep("separate", str(src), "--format", "same", "-o", str(tmp_path / "o"), "-q")
    assert r.returncode == 0, r.stderr
    info = sf.info(tmp_path / "o" / "in" / "speech.flac")
    assert (info.format, info.subtype) == ("FLAC", "PCM_24")


def test_usage_errors_exit_2() -> None:
    cases = [
        ["separate", str(MIX), "--format", "aac"],
        ["separate", str(MIX), "--sources", "voice"],
        ["separate", str(MIX), "--stdout", "voice"],
        ["separate", str(MIX), str(MIX), "--stdout", "speech"],
        ["separate", str(MIX), "--stdout", "speech", "--json"],
        ["separate", str(MIX), "--format", "flac", "--float32"],
        ["separate", str(MIX), "--int16", "--int24"],
        ["separate", str(MIX), "--atten-lim", "-3"],
        ["separate", str(MIX), "-0"],
        ["separate", "-", "--files-from", "-"],
        ["separate", str(MIX), "--duration", "0"],
    ]
    for args in cases:
        r = nmfsep(*args, stdin=b"")
        assert r.returncode == 2, (args, r.stderr)
        assert r.stderr.startswith(b"error: ") and r.stderr.count(b"\n") == 1, (args, r.stderr)
    r = nmfsep("separate", "-", "--files-from", "-", stdin=b"")
    assert b"both read standard input" in r.stderr


def test_mp3_and_empty_stdin_are_refused_in_one_line(tmp_path: Path) -> None:
    mp3 = tmp_path / "x.mp3"
    y, sr = sf.read(MIX, dtype="float32")
    sf.write(mp3, y, sr)
    r = nmfsep("separate", "-", "--stdout", "speech", stdin=mp3.read_bytes())
    assert r.returncode == 1 and r.stdout == b""
    assert b"MP3 cannot be read from a pipe" in r.stderr and r.stderr.count(b"\n") == 1
    r = nmfsep("separate", "-", "--stdout", "speech", stdin=b"")
    assert r.returncode == 1 and b"empty" in r.stderr and r.stderr.count(b"\n") == 1


def test_files_from_null_separated(tmp_path: Path) -> None:
    a = tmp_path / "a b.wav"
    shutil.copy(MIX, a)
    listing = str(a).encode() + b"\0"
    r = nmfsep("separate", "--files-from", "-", "-0", "-o", str(tmp_path / "o"), "-q",
               stdin=listing)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "o" / "a b" / "speech.wav").is_file()


def test_cluster_from_stdin_spools(tmp_path: Path) -> None:
    r = nmfsep("cluster", "-", "--stdout", "source1", "-q", "-k", "8", "--max-iter", "20",
               stdin=MIX.read_bytes())  # fmt: skip
    assert r.returncode == 0, r.stderr
    y, _ = read_bytes(r.stdout, tmp_path)
    assert y.shape[0] == 108800


@pytest.mark.skipif(shutil.which("ffmpeg") is not None, reason="ffmpeg is installed")
def test_m4a_without_ffmpeg_is_one_line_exit_1(tmp_path: Path) -> None:
    m4a = tmp_path / "talk.m4a"
    m4a.write_bytes(b"\0\0\0\x20ftypM4A " + b"\0" * 100)
    r = nmfsep("separate", str(m4a), "-o", str(tmp_path / "o"))
    assert r.returncode == 1
    assert b"ffmpeg" in r.stderr and r.stderr.count(b"\n") <= 2


def _wav_stream(minutes: float, sr: int = 8000) -> tuple[bytes, bytes]:
    """A streamed WAV header (unknown length) and 10 s of 16-bit audio to repeat."""
    header = (
        b"RIFF" + struct.pack("<I", 0xFFFFFFFF) + b"WAVEfmt "
        + struct.pack("<IHHIIHH", 16, 1, 1, sr, 2 * sr, 2, 16)
        + b"data" + struct.pack("<I", 0xFFFFFFFF)
    )  # fmt: skip
    rng = np.random.default_rng(0)
    t = np.arange(sr * 10) / sr
    tone = 0.3 * np.sin(2 * np.pi * 220 * t) * (np.sin(2 * np.pi * 0.5 * t) > 0)
    chunk = ((tone + 0.05 * rng.standard_normal(t.size)) * 32767).astype("<i2").tobytes()
    return header, chunk


def _peak_rss_of_pipe(minutes: float) -> tuple[int, int]:
    """Run ``nmfsep separate - --stdout speech`` on a generated stream in a fresh helper
    process; return (peak RSS of nmfsep in KiB, bytes on its stdout)."""
    code = f"""
import resource, subprocess, sys, threading
sys.path.insert(0, {str(ROOT)!r})
from tests.test_pipes import _wav_stream
header, chunk = _wav_stream({minutes})
n = int({minutes} * 6)
p = subprocess.Popen([sys.executable, "-m", "nmfsep", "separate", "-", "--stdout", "speech",
                      "-q", "--max-iter", "2", "--block-seconds", "10"],
                     stdin=subprocess.PIPE, stdout=subprocess.PIPE)
def feed():
    p.stdin.write(header)
    for _ in range(n):
        p.stdin.write(chunk)
    p.stdin.close()
threading.Thread(target=feed, daemon=True).start()
total = 0
while block := p.stdout.read(1 << 16):
    total += len(block)
assert p.wait() == 0
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, total)
"""
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, env=ENV, timeout=300, check=True
    )
    rss, total = out.stdout.split()
    return int(rss), int(total)


@pytest.mark.slow
def test_pipe_memory_is_bounded_on_a_long_stream() -> None:
    short_rss, short_bytes = _peak_rss_of_pipe(2)
    long_rss, long_bytes = _peak_rss_of_pipe(20)
    assert short_bytes == 44 + 2 * 60 * 8000 * 2
    assert long_bytes == 44 + 20 * 60 * 8000 * 2
    # 18 more minutes are 17 MB of 16-bit input, 35 MB as float32: none of it may stay
    assert long_rss - short_rss < 12 * 1024, (short_rss, long_rss)


def test_nothing_but_audio_on_stdout_and_messages_on_stderr(tmp_path: Path) -> None:
    r = nmfsep("separate", "-", "--stdout", "speech", stdin=MIX.read_bytes())
    assert r.returncode == 0
    assert b"ok" in r.stderr and b"(stdout)" in r.stderr
    y, _ = read_bytes(r.stdout, tmp_path)
    assert y.shape[0] == 108800


_ = (resource, threading)  # used by the helper process's code


@pytest.mark.parametrize("fmt", ["wav", "flac"])
def test_a_reader_that_closes_early_is_one_line_exit_1(tmp_path: Path, fmt: str) -> None:
    """``nmfsep ... --stdout speech | head -c 100``: the closed pipe is said in one line, exit 1,
    with no traceback (the error used to surface inside libsndfile's write callback)."""
    long = tmp_path / "long.wav"
    rng = np.random.default_rng(0)
    sf.write(long, (0.1 * rng.standard_normal(16000 * 30)).astype(np.float32), 16000)
    args = [sys.executable, "-m", "nmfsep", "separate", str(long), "--stdout", "speech"]
    with subprocess.Popen(
        [*args, "--format", fmt, "-q"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=ENV,
    ) as proc:
        assert proc.stdout is not None and proc.stderr is not None
        head = proc.stdout.read(100)
        proc.stdout.close()  # the reader goes away; 30 s of audio do not fit a pipe's buffer
        err = proc.stderr.read().decode()
        code = proc.wait(timeout=300)
    assert code == 1, err
    assert len(head) == 100
    assert err == f"error: {long}: standard output was closed by the reader\n"


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_a_full_stdout_is_one_line_exit_1() -> None:
    with open("/dev/full", "wb") as full:
        r = subprocess.run(
            [sys.executable, "-m", "nmfsep", "separate", str(MIX), "--stdout", "speech", "-q"],
            stdout=full,
            stderr=subprocess.PIPE,
            env=ENV,
            timeout=300,
        )
    err = r.stderr.decode()
    assert r.returncode == 1
    assert err.startswith(f"error: {MIX}: cannot write audio to stdout (") and err.count("\n") == 1


def test_cluster_blend_from_a_stream_equals_the_file(tmp_path: Path) -> None:
    piped = nmfsep(
        "separate", "-", "--cluster-blend", "0.3", "--stdout", "speech", stdin=MIX.read_bytes()
    )
    assert piped.returncode == 0, piped.stderr
    y, _ = read_bytes(piped.stdout, tmp_path)
    files = nmfsep("separate", str(MIX), "--cluster-blend", "0.3", "-o", str(tmp_path / "o"), "-q")
    assert files.returncode == 0, files.stderr
    ref, _ = sf.read(tmp_path / "o" / "mix" / "speech.wav", dtype="float32", always_2d=True)
    assert y.shape == ref.shape
    np.testing.assert_allclose(y, ref, atol=1e-4)  # 16-bit file output against float stdout


def test_a_wav_longer_than_the_head_streams_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # libsndfile seeks past a data chunk of known size and back; a pipe keeps only its head
    # (4 MiB; 64 KiB here), so a longer WAV of known length failed ("cannot seek back")
    import io

    from nmfsep import pipes

    monkeypatch.setattr(pipes, "HEAD_BYTES", 1 << 16)
    monkeypatch.setattr(pipes, "WINDOW_BYTES", 1 << 12)
    y = (0.1 * np.random.default_rng(0).standard_normal((40_000, 2))).astype(np.float32)
    p = tmp_path / "x.wav"
    sf.write(p, y, 8000, subtype="FLOAT")
    # a chunk after the data (as some editors write): metadata, never read as samples
    data = p.read_bytes() + b"LIST" + struct.pack("<I", 8) + b"INFOabcd"
    stream = pipes.InputStream("-", pipes.StreamReader(io.BytesIO(data)))
    assert stream.format_info() == ("WAV", "FLOAT")
    blocks = []
    with stream.open() as f:
        while len(block := f.read(4096, dtype="float32", always_2d=True)):
            blocks.append(block)
    np.testing.assert_array_equal(np.concatenate(blocks), y)


def test_other_containers_on_stdin_are_refused_not_spun_on(tmp_path: Path) -> None:
    # an 8SVX stream made libsndfile seek about the pipe forever (deaf to SIGTERM)
    p = tmp_path / "x.8svx"
    sf.write(p, np.zeros(800, np.float32), 8000, format="SVX", subtype="PCM_16")
    r = nmfsep("separate", "-", "--stdout", "speech", stdin=p.read_bytes())
    assert r.returncode == 1 and r.stdout == b""
    assert b"not a WAV, FLAC or Ogg stream" in r.stderr and r.stderr.count(b"\n") == 1


def test_stdin_keeps_its_container_and_sample_format(tmp_path: Path) -> None:
    y, sr = sf.read(MIX, dtype="float32")
    flac = tmp_path / "in.flac"
    sf.write(flac, y, sr, subtype="PCM_24")
    r = nmfsep("separate", "-", "--format", "same", "-o", str(tmp_path / "o"), "-q",
               stdin=flac.read_bytes())  # fmt: skip
    assert r.returncode == 0, r.stderr
    info = sf.info(tmp_path / "o" / "stdin" / "speech.flac")
    assert (info.format, info.subtype) == ("FLAC", "PCM_24")
    # a float stream far below 16-bit resolution: float outputs that still sum to it
    quiet = tmp_path / "quiet.wav"
    sf.write(quiet, y[:8000] * np.float32(1e-30), sr, subtype="FLOAT")
    r = nmfsep("separate", "-", "-o", str(tmp_path / "q"), "-q", stdin=quiet.read_bytes())
    assert r.returncode == 0, r.stderr
    parts = [sf.read(tmp_path / "q" / "stdin" / f"{s}.wav", dtype="float32") for s in
             ("speech", "noise")]  # fmt: skip
    assert all(sf.info(tmp_path / "q" / "stdin" / f"{s}.wav").subtype == "FLOAT"
               for s in ("speech", "noise"))  # fmt: skip
    total = parts[0][0] + parts[1][0]
    assert np.abs(parts[0][0]).max() > 0
    np.testing.assert_allclose(total, y[:8000] * np.float32(1e-30), rtol=0, atol=1e-35)


def test_stdout_that_is_the_input_file_is_refused(tmp_path: Path) -> None:
    # `nmfsep separate in.wav --stdout speech 1<>in.wav` wrote over its own input
    p = tmp_path / "in.wav"
    p.write_bytes(MIX.read_bytes())
    with open(p, "r+b") as same:
        r = subprocess.run(
            [sys.executable, "-m", "nmfsep", "separate", str(p), "--stdout", "speech"],
            stdout=same,
            stderr=subprocess.PIPE,
            env=ENV,
            timeout=300,
        )
    assert r.returncode == 2 and b"is the input" in r.stderr and r.stderr.count(b"\n") == 1
    assert p.read_bytes() == MIX.read_bytes()


def _run_with(args: list[str], stdin: Path | None = None, stdout: Path | None = None,
              cwd: Path | None = None) -> subprocess.CompletedProcess[bytes]:  # fmt: skip
    """nmfsep with stdin read from a file (``< f``) and/or stdout onto one (``1<> f``)."""
    with contextlib.ExitStack() as stack:
        fin = stack.enter_context(open(stdin, "rb")) if stdin is not None else None
        fout = stack.enter_context(open(stdout, "r+b")) if stdout is not None else None
        return subprocess.run(
            [sys.executable, "-m", "nmfsep", *args],
            stdin=fin,
            stdout=fout if fout is not None else subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=cwd,
            env=ENV,
            timeout=300,
        )


def test_stdin_outputs_never_replace_files_unasked_nor_the_input(tmp_path: Path) -> None:
    """The stdin path replaced a lone existing output without --overwrite, and with
    ``< out/speech.wav`` (or ``--save-model`` on the input) wrote over its own input."""
    (tmp_path / "W" / "stdin").mkdir(parents=True)
    (tmp_path / "W" / "stdin" / "speech.wav").write_text("precious")
    r = _run_with(["separate", "-", "-o", "W"], stdin=MIX, cwd=tmp_path)
    assert r.returncode == 1 and b"exists but not all of its outputs do" in r.stderr
    assert (tmp_path / "W" / "stdin" / "speech.wav").read_text() == "precious"
    assert not (tmp_path / "W" / "stdin" / "noise.wav").exists()
    # the file on stdin is an output: refused even with --overwrite
    (tmp_path / "X").mkdir()
    own = tmp_path / "X" / "speech.wav"
    own.write_bytes(MIX.read_bytes())
    for extra in ([], ["--overwrite"]):
        r = _run_with(["separate", "-", "-o", "X", "--filename", "{source}.{ext}", *extra],
                      stdin=own, cwd=tmp_path)  # fmt: skip
        assert r.returncode == 2, r.stderr
        assert b"is the file on standard input: refusing to write over it" in r.stderr
        assert own.read_bytes() == MIX.read_bytes()
    # --save-model onto the input, from stdin and from a file with --stdout
    victim = tmp_path / "victim.wav"
    victim.write_bytes(MIX.read_bytes())
    args = ["cluster", "-n", "2", "-k", "8", "--save-model", str(victim), "--overwrite"]
    r = _run_with([*args[:1], "-", "-o", "V", *args[1:]], stdin=victim, cwd=tmp_path)
    assert r.returncode == 2 and b"is the file on standard input" in r.stderr
    r = _run_with([*args[:1], str(victim), "--stdout", "source1", *args[1:]], cwd=tmp_path)
    assert r.returncode == 2 and b"is the input file: refusing" in r.stderr
    assert victim.read_bytes() == MIX.read_bytes()


def test_stdout_that_is_the_model_file_is_refused(tmp_path: Path) -> None:
    model = tmp_path / "m.npz"
    r = nmfsep("train", f"speech={MIX}", f"noise={MIX}", "-o", str(model), "-k", "2",
               "--max-iter", "2", "-q")  # fmt: skip
    assert r.returncode == 0, r.stderr
    before = model.read_bytes()
    r = _run_with(["separate", str(MIX), "-m", str(model), "--stdout", "speech"], stdout=model)
    assert r.returncode == 2 and b"standard output is the model" in r.stderr
    assert model.read_bytes() == before


def test_closed_or_full_stdout_for_stdout_and_json_is_one_line() -> None:
    def run(*args: str, **kw: object) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            [sys.executable, "-m", "nmfsep", *args],
            stderr=subprocess.PIPE,
            env=ENV,
            timeout=300,
            **kw,  # type: ignore[call-overload]
        )

    closed = run("separate", str(MIX), "--stdout", "speech", stdout=subprocess.DEVNULL,
                 preexec_fn=lambda: os.close(1))  # fmt: skip
    assert (
        closed.returncode == 2 and closed.stderr == b"error: --stdout: standard output is closed\n"
    )
    if Path("/dev/full").exists():
        with open("/dev/full", "wb") as full:
            r = run(
                "info", str(ROOT / "nmfsep" / "data" / "default_model.npz"), "--json", stdout=full
            )
        assert r.returncode == 1
        assert (
            r.stderr
            == b"error: cannot write the JSON summary to stdout (No space left on device)\n"
        )


def test_json_answers_a_refusal_of_the_parser() -> None:
    r = nmfsep("separate", str(MIX), "--max-iter", "0", "--json")
    assert r.returncode == 2 and r.stderr.count(b"\n") == 1
    payload = json.loads(r.stdout)
    assert payload["status"] == "error" and payload["exit_code"] == 2
    assert payload["command"] == "separate" and "--max-iter" in payload["error"]
    # "--json=1": the parser refuses the value, the script still gets its object
    r = nmfsep("separate", str(MIX), "--json=1")
    assert r.returncode == 2 and json.loads(r.stdout)["error"] == (
        "Option '--json' does not take a value."
    )


def test_cluster_from_stdin_never_replaces_a_model_file_unasked(tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("mine")
    r = nmfsep("cluster", "-", "-o", str(tmp_path / "o"), "--save-model", str(notes),
               stdin=MIX.read_bytes())  # fmt: skip
    assert r.returncode == 2 and b"exists" in r.stderr and r.stderr.count(b"\n") == 1
    assert notes.read_text() == "mine" and not (tmp_path / "o").exists()


def test_cluster_from_stdin_to_files_spools_the_whole_stream(tmp_path: Path) -> None:
    # the stream's header is read first (for its sample format): the spooled copy must still
    # start at the stream's first byte, with the header as it came
    y, sr = sf.read(MIX, dtype="float32")
    src = tmp_path / "in.wav"
    sf.write(src, y, sr, subtype="PCM_24")
    r = nmfsep("cluster", "-", "-o", str(tmp_path / "o"), "-q", stdin=src.read_bytes())
    assert r.returncode == 0, r.stderr
    parts = [sf.read(tmp_path / "o" / "stdin" / f"source{i}.wav", dtype="float64") for i in (1, 2)]
    assert all(sf.info(tmp_path / "o" / "stdin" / f"source{i}.wav").subtype == "PCM_24"
               for i in (1, 2))  # fmt: skip
    mixture, _ = sf.read(src, dtype="float64")
    assert parts[0][0].shape == mixture.shape
    assert np.abs(parts[0][0] + parts[1][0] - mixture).max() < 1e-5


def test_a_huge_chunk_before_the_data_is_not_buffered() -> None:
    # a header claiming a 2 GB chunk before "data": looking for the data chunk must stop at
    # the head, not read 2 GB of the pipe into memory
    from nmfsep import pipes

    class Endless:
        def __init__(self, head: bytes) -> None:
            self.head, self.served = head, 0

        def read(self, n: int) -> bytes:
            data = self.head[self.served : self.served + n] or bytes(min(n, 1 << 16))
            self.served += len(data)
            return data

    head = b"RIFF" + struct.pack("<I", 36) + b"WAVE" + b"LIST" + struct.pack("<I", 0x7FFF0000)
    raw = Endless(head)
    reader = pipes.StreamReader(raw)  # type: ignore[arg-type]
    reader.stream_wav()
    assert reader.limit is None and raw.served <= pipes.HEAD_BYTES + (1 << 16)


def test_a_full_temporary_directory_while_spooling_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``cluster -`` copies the stream first: a full $TMPDIR was an internal error naming no
    file; now the directory is named and nothing is left in it."""
    import errno
    import io
    import shutil

    from nmfsep import pipes
    from nmfsep.errors import NmfsepError

    def full(*args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(shutil, "copyfileobj", full)
    stream = pipes.InputStream(name="-", reader=pipes.StreamReader(io.BytesIO(MIX.read_bytes())))
    with pytest.raises(NmfsepError) as info:
        pipes.spool(stream, tmp_path)
    assert str(info.value) == (
        f"{tmp_path}: cannot copy the stream to a temporary file there (No space left on "
        "device); set TMPDIR to a directory with room"
    )
    assert list(tmp_path.iterdir()) == []


def test_stdin_runs_remove_what_a_killed_stdin_run_left(tmp_path: Path) -> None:
    """A killed ``separate -`` left its hidden temporary files; only the batch path removed
    such leftovers."""
    import subprocess as sp

    from nmfsep import audio
    from nmfsep.audio import TEMP_SUFFIX

    dead = sp.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp_path / "out" / "stdin").mkdir(parents=True)
    stale = (
        tmp_path
        / "out"
        / "stdin"
        / f".speech.wav.{audio._host_tag()}-{dead.pid}-0123abcd{TEMP_SUFFIX}"
    )
    stale.write_bytes(b"half a file")
    r = nmfsep("separate", "-", "-o", str(tmp_path / "out"), stdin=MIX.read_bytes())
    assert r.returncode == 0, r.stderr
    assert not stale.exists()
    assert sorted(p.name for p in (tmp_path / "out" / "stdin").iterdir()) == [
        "noise.wav", "speech.wav"
    ]  # fmt: skip


def test_dash_with_other_inputs_says_what_is_wrong() -> None:
    r = nmfsep("separate", "-", "-", "-o", "x", stdin=MIX.read_bytes())
    assert r.returncode == 2
    assert (
        r.stderr
        == b"error: '-' (stdin) is the only input when given (no other inputs, no --files-from)\n"
    )
    r = nmfsep("separate", str(MIX), str(MIX), "--stdout", "speech")
    assert r.returncode == 2 and b"--stdout takes exactly one input" in r.stderr


def test_a_failed_overwrite_from_stdin_puts_the_old_outputs_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``cluster - --save-model M --overwrite``: the model failed after the audio outputs were
    renamed, which were then removed, and the files they had replaced were gone too."""
    from typer.testing import CliRunner

    from nmfsep.cli import app
    from nmfsep.errors import ModelError
    from nmfsep.model import NMFModel

    out = tmp_path / "o" / "stdin"
    out.mkdir(parents=True)
    for name in ("source1.wav", "source2.wav", "m.npz"):
        (out / name).write_bytes(b"old " + name.encode())

    def full(self: NMFModel, path: object, **kw: object) -> None:
        raise ModelError("no space left on device", path=path)

    monkeypatch.setattr(NMFModel, "save", full)
    args = ["cluster", "-", "-o", str(tmp_path / "o"), "-k", "8", "--save-model",
            str(out / "m.npz"), "--overwrite", "-q"]  # fmt: skip
    r = CliRunner().invoke(app, args, input=MIX.read_bytes())
    assert r.exit_code == 1, r.output
    assert "no space left on device" in r.output
    for name in ("source1.wav", "source2.wav", "m.npz"):
        assert (out / name).read_bytes() == b"old " + name.encode()
    assert sorted(p.name for p in out.iterdir()) == ["m.npz", "source1.wav", "source2.wav"]
    # a --save-model that is a directory is refused before anything is read (as for a file)
    r = CliRunner().invoke(app, ["cluster", "-", "-o", str(tmp_path / "p"), "--save-model",
                                 str(out), "--overwrite"], input=MIX.read_bytes())  # fmt: skip
    assert r.exit_code == 2 and "is a directory" in r.output and not (tmp_path / "p").exists()
