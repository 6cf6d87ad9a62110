"""Progress bars on stderr: shown when stderr is a terminal (a pty here), never with ``-q`` or
when stderr is not a terminal (pipes, tests, scripts)."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
AUDIO = ROOT / "sample_audio"
#: rich would take these as "force a terminal" (or no colour): not what is tested here
_RICH_ENV = ("FORCE_COLOR", "NO_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE", "COLUMNS", "LINES")
ENV = {k: v for k, v in os.environ.items() if k not in _RICH_ENV}
ENV.update(OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT), TERM="xterm")


def run_on_pty(*args: str, cwd: Path) -> tuple[int, str, str]:
    """Run nmfsep with stderr on a pseudo-terminal: (exit code, stdout, what the terminal got)."""
    master, slave = pty.openpty()
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "nmfsep", *args],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=slave, cwd=cwd, env=ENV,
        )  # fmt: skip
    finally:
        os.close(slave)
    seen = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        seen += chunk
    os.close(master)
    assert proc.stdout is not None
    out = proc.stdout.read()
    proc.stdout.close()
    return proc.wait(timeout=300), out.decode(), seen.decode("utf-8", "replace")


ARGS = (str(AUDIO / "mix.wav"), str(AUDIO / "speech.wav"), "-j", "1", "--block-seconds", "1")


def test_bars_on_a_terminal(tmp_path: Path) -> None:
    code, out, err = run_on_pty("separate", *ARGS, "-o", "out", cwd=tmp_path)
    assert code == 0, err
    assert out == ""
    assert "files 0/2" in err and "ETA" in err  # the files bar
    assert "real time" in err  # the real-time factor
    assert "ok    " in err and "2 done" in err  # the usual lines too


def test_bars_with_json_keep_stdout_clean(tmp_path: Path) -> None:
    import json

    code, out, err = run_on_pty("separate", *ARGS, "-o", "out", "--json", cwd=tmp_path)
    assert code == 0, err
    assert json.loads(out)["summary"]["ok"] == 2
    assert "ETA" in err


def test_quiet_on_a_terminal_shows_nothing(tmp_path: Path) -> None:
    code, _, err = run_on_pty("separate", *ARGS, "-o", "out", "-q", cwd=tmp_path)
    assert code == 0, err
    assert err.strip() == ""


def test_no_bars_when_stderr_is_not_a_terminal(tmp_path: Path) -> None:
    r = subprocess.run(
        [sys.executable, "-m", "nmfsep", "separate", *ARGS, "-o", "out"],
        capture_output=True, text=True, cwd=tmp_path, env=ENV, timeout=300,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    lines = r.stderr.splitlines()
    usual = ("ok    ", "2 done", "compiling numerical kernels")  # the last on a cold cache
    assert lines and all(line.startswith(usual) for line in lines), r.stderr
    assert "\x1b" not in r.stderr and "ETA" not in r.stderr


def test_bars_for_stdin_to_stdout(tmp_path: Path) -> None:
    master, slave = pty.openpty()
    with open(AUDIO / "mix.wav", "rb") as fh, open(tmp_path / "speech.wav", "wb") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-m", "nmfsep", "separate", "-", "--stdout", "speech",
             "--block-seconds", "1"],
            stdin=fh, stdout=sink, stderr=slave, cwd=tmp_path, env=ENV,
        )  # fmt: skip
        os.close(slave)
        seen = b""
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
        os.close(master)
    assert proc.wait(timeout=300) == 0, seen
    assert (tmp_path / "speech.wav").read_bytes()[:4] == b"RIFF"  # stdout is the audio alone
    assert b"ok    -" in seen and b"ETA" in seen


def test_a_cold_numba_cache_is_said_once(tmp_path: Path) -> None:
    from nmfsep.cli import COMPILING

    env = {**ENV, "NUMBA_CACHE_DIR": str(tmp_path / "cache")}
    args = [sys.executable, "-m", "nmfsep", "separate", str(AUDIO / "mix.wav"), "--duration", "1"]
    said = []
    for extra in (["-q"], [], []):  # quiet on a cold cache (and fills it), then warm
        r = subprocess.run(
            [*args, "-o", "out", "--overwrite", *extra],
            capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300,
        )  # fmt: skip
        assert r.returncode == 0, r.stderr
        said.append(COMPILING in r.stderr)
    assert said == [False, False, False]  # -q says nothing; then the cache is warm
    r = subprocess.run(
        [*args, "-o", "out", "--overwrite"],
        capture_output=True, text=True, cwd=tmp_path,
        env={**ENV, "NUMBA_CACHE_DIR": str(tmp_path / "cold")}, timeout=300,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert r.stderr.splitlines()[0] == COMPILING
