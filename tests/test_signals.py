"""Interrupted runs: SIGKILL never leaves a partial output, Ctrl-C exits 130 without a traceback.

Real subprocesses (``python -m nmfsep``): the behaviour under signals is the operating system's,
not something a ``CliRunner`` can show.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from nmfsep.audio import TEMP_SUFFIX
from nmfsep.cli import app
from nmfsep.separation import train_model
from nmfsep.spectral import STFTConfig

pytestmark = pytest.mark.skipif(os.name != "posix", reason="POSIX signals")

SR = 16000
runner = CliRunner()


def _signal(seconds: float, sr: int = SR, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(round(seconds * sr)) / sr
    y = 0.2 * np.sin(2 * np.pi * 220 * t) + 0.05 * rng.standard_normal(t.size)
    return y.astype(np.float32)


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    speech = _signal(1.0, 8000)[None]
    noise = (0.05 * np.random.default_rng(2).standard_normal((1, 8000))).astype(np.float32)
    trained = train_model(
        {"speech": [speech], "noise": [noise]},
        sr=8000,
        n_components=2,
        stft_config=STFTConfig(n_fft=64, hop_length=16),
        max_iter=5,
    )
    return trained.save(tmp_path_factory.mktemp("model") / "tiny.npz")


@pytest.fixture(scope="module")
def batch_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """a_small.wav (0.5 s) is done first; b_long.wav (60 s) keeps the run busy."""
    d = tmp_path_factory.mktemp("batch")
    sf.write(d / "a_small.wav", _signal(0.5), SR)
    sf.write(d / "b_long.wav", _signal(60.0, seed=3), SR)
    return d


class _Run:
    """A ``python -m nmfsep`` subprocess whose stderr is collected line by line."""

    def __init__(self, *args: str | Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "nmfsep", *map(str, args)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[str] = []
        assert self.proc.stderr is not None
        stream = self.proc.stderr
        self._reader = threading.Thread(target=lambda: self.lines.extend(stream), daemon=True)
        self._reader.start()

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if self.proc.poll() is not None:
                self._reader.join(5)
                pytest.fail(f"exited early ({self.proc.returncode}): {''.join(self.lines)}")
            if time.monotonic() > deadline:
                self.proc.kill()
                pytest.fail(f"timed out; stderr so far: {''.join(self.lines)}")
            time.sleep(0.05)

    def finish(self, timeout: float = 30.0) -> tuple[int, str]:
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            pytest.fail(f"did not stop within {timeout} s of the signal")
        self._reader.join(5)
        if self.proc.stderr is not None:
            self.proc.stderr.close()
        return code, "".join(self.lines)


def _temp_files(directory: Path) -> list[Path]:
    return [p for p in directory.rglob("*") if p.name.endswith(TEMP_SUFFIX)]


def _slow_separate(batch: Path, out: Path, jobs: int) -> _Run:
    # --tol 0 with many iterations: b_long takes well over ten seconds.
    return _Run("separate", batch, "-o", out, "-j", str(jobs), "--tol", "0", "--max-iter", "500")


# ---------------------------------------------------------------------------------------------
# SIGKILL


_DRIVER = textwrap.dedent(
    """
    import sys, time
    import numpy as np
    import soundfile as sf
    from nmfsep.audio import write_audio

    real_write = sf.SoundFile.write
    def slow_write(self, data):  # the first block lands on disk, then we hang mid-file
        real_write(self, data)
        self.flush()
        print("WRITING", flush=True)
        time.sleep(120)
    sf.SoundFile.write = slow_write
    y = np.zeros((2, 200_000), np.float32)
    write_audio(sys.argv[1], y, 16000)
    """
)


def test_sigkill_mid_write_leaves_no_partial_output(tiny_model: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    target = out / "mix" / "speech.wav"
    driver = tmp_path / "driver.py"
    driver.write_text(_DRIVER)
    proc = subprocess.Popen(
        [sys.executable, str(driver), str(target)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "WRITING"
    temps = _temp_files(out)
    assert len(temps) == 1 and temps[0].stat().st_size > 0
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    proc.stdout.close()

    # No file with the output's name; the leftover is hidden and not named like audio.
    assert not target.exists()
    (temp,) = _temp_files(out)
    assert temp.name.startswith(".") and not temp.name.endswith(".wav")
    assert temp.parent == target.parent

    # The next run that writes into that directory removes it (its writer is dead) and says
    # so; it looks nowhere else: a dead run's leftover in another directory of OUTDIR, and a
    # user's file that only ends like a temporary file, are left alone.
    elsewhere = out / "other" / temp.name
    elsewhere.parent.mkdir()
    elsewhere.write_bytes(b"x")
    mine = out / "mix" / "notes.nmfsep-tmp"
    mine.write_bytes(b"keep")
    mix = tmp_path / "mix.wav"
    sf.write(mix, _signal(0.25, 8000), 8000)
    result = runner.invoke(app, ["separate", str(mix), "-m", str(tiny_model), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "removed 1 unfinished temporary file(s)" in result.stderr
    assert not temp.exists() and elsewhere.exists() and mine.read_bytes() == b"keep"
    assert target.is_file()


def test_sigkill_of_the_cli_mid_run(batch_dir: Path, tiny_model: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    run = _slow_separate(batch_dir, out, jobs=1)
    run.wait_for(lambda: any("a_small" in line for line in run.lines))
    # The long input is being processed: wait (briefly) for its temporary outputs to appear.
    deadline = time.monotonic() + 10
    while not _temp_files(out) and time.monotonic() < deadline:
        time.sleep(0.05)
    run.proc.send_signal(signal.SIGKILL)
    code, _ = run.finish()
    assert code == -signal.SIGKILL
    assert not list(out.glob("b_long/*.wav"))
    for source in ("speech", "noise"):  # the finished input's outputs are complete
        assert sf.info(out / "a_small" / f"{source}.wav").frames == SR // 2

    result = runner.invoke(app, ["separate", str(batch_dir / "a_small.wav"), "-o", str(out)])
    assert result.exit_code == 0  # skipped: its outputs exist
    assert _temp_files(out) == []


# ---------------------------------------------------------------------------------------------
# SIGINT (Ctrl-C)


@pytest.mark.parametrize("jobs", [1, 2])
def test_ctrl_c_exits_130_without_traceback(batch_dir: Path, tmp_path: Path, jobs: int) -> None:
    psutil = pytest.importorskip("psutil")
    out = tmp_path / "out"
    run = _slow_separate(batch_dir, out, jobs=jobs)
    run.wait_for(lambda: any("a_small" in line for line in run.lines))
    children = psutil.Process(run.proc.pid).children(recursive=True)
    if jobs > 1:
        assert children, "expected worker processes"
    time.sleep(0.3)
    start = time.monotonic()
    run.proc.send_signal(signal.SIGINT)
    code, stderr = run.finish(timeout=30)
    assert code == 130, stderr
    assert time.monotonic() - start < 15  # does not wait for the long input to finish
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr
    assert stderr.splitlines()[-1] == "interrupted: unfinished inputs have no outputs"
    assert not any(line.startswith("error:") for line in stderr.splitlines())
    # No output of the interrupted input, and no worker left running.
    assert not list(out.glob("b_long/*.wav"))
    _, alive = psutil.wait_procs(children, timeout=10)
    assert not alive, alive
    for source in ("speech", "noise"):
        assert sf.info(out / "a_small" / f"{source}.wav").frames == SR // 2


_LOADING = """
import sys

class Stop:  # Ctrl-C while the command line loads: its first import is interrupted
    def find_spec(self, name, path=None, target=None):
        if name == "nmfsep.cli":
            raise KeyboardInterrupt
        return None

sys.meta_path.insert(0, Stop())
"""
_PARSING = """
import sys
import nmfsep.cli

def parse(**kw):  # Ctrl-C while the command line is parsed, before the command's guard runs
    raise KeyboardInterrupt

nmfsep.cli.app = parse
"""
_RUN = """
sys.argv = ["nmfsep", "separate", "in.wav", "--json"]
from nmfsep.__main__ import main
main()
"""


@pytest.mark.parametrize("before", [_LOADING, _PARSING], ids=["loading", "parsing"])
def test_ctrl_c_before_the_command_runs(tmp_path: Path, before: str) -> None:
    """Ctrl-C in the first tenth of a second (loading typer and rich) printed a traceback, and
    until the command's own guard ran (a third of a second), --json printed nothing."""
    import json

    r = subprocess.run([sys.executable, "-c", before + _RUN], capture_output=True, cwd=tmp_path,
                       env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=120)  # fmt: skip
    assert r.returncode == 130, r.stderr
    assert r.stderr == b"interrupted\n"
    payload = json.loads(r.stdout)
    assert payload["status"] == "interrupted" and payload["exit_code"] == 130
    assert payload["command"] == "separate"
