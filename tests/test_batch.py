"""nmfsep.batch: claims of jobs that run side by side."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from nmfsep import batch
from nmfsep.errors import ParameterError


@pytest.mark.parametrize("race", ["made_by_another", "removed_by_another"])
def test_claim_survives_another_job_touching_the_parents(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, race: str
) -> None:
    """Between looking for the missing output directories and making them, another job may
    make one (FileExistsError) or remove the empty one it made when its own claim left
    nothing (FileNotFoundError); the claim still ends up made, with its directories."""
    out = tmp_path / "out" / "x" / "speech.wav"
    real_mkdir = os.mkdir
    calls: list[str] = []

    def racing_mkdir(path: str | os.PathLike[str], *args: object, **kwargs: object) -> None:
        calls.append(os.fspath(path))
        if len(calls) == 1 and race == "made_by_another":
            real_mkdir(path)  # the other job was first
            raise FileExistsError(path)
        if len(calls) == 2 and race == "removed_by_another":
            os.rmdir(tmp_path / "out")  # the other job removes what it made (and left empty)
        real_mkdir(path, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "mkdir", racing_mkdir)
    claim = batch._claim(str(out))
    monkeypatch.undo()
    assert isinstance(claim, batch._Claim)
    assert batch.lock_path(str(out)).exists()
    assert len(calls) == (2 if race == "made_by_another" else 4)  # the race happened, once
    claim.release()  # nothing written: the directories it made go again, not the other's
    assert not (tmp_path / "out" / "x").exists()
    assert (tmp_path / "out").exists() == (race == "made_by_another")


def test_a_placeholder_that_gives_nothing_is_named(tmp_path: Path) -> None:
    """``{track:.0}/...`` (or ``{dir}`` of a file at /) gave "/speech.wav", reported as leaving
    the output directory; a doubled slash in the template itself is harmless."""
    kw = dict(track="mix", input_path="/data/mix.wav", sources=["speech"], ext="wav")
    with pytest.raises(ParameterError, match="has an empty folder name: a --filename placeholder"):
        batch.output_paths(tmp_path, "{track:.0}/{source}.{ext}", **kw)  # type: ignore[arg-type]
    paths = batch.output_paths(tmp_path, "{track}//{source}.{ext}", **kw)  # type: ignore[arg-type]
    assert paths == {"speech": str(tmp_path / "mix" / "speech.wav")}


def test_long_output_names_get_distinct_claims(tmp_path: Path) -> None:
    """Names cut to 200 bytes for the claim file collided (70 CJK characters), and one input
    of the batch was reported as claimed by its own worker and never done."""
    stem = "音" * 70  # 210 bytes in UTF-8
    a, b = tmp_path / f"{stem}1.speech.wav", tmp_path / f"{stem}2.speech.wav"
    la, lb = batch.lock_path(a), batch.lock_path(b)
    assert la != lb and la.parent == lb.parent == tmp_path
    assert all(len(os.fsencode(x.name)) <= 255 for x in (la, lb))
    assert batch.lock_path(a) == la  # the same output, the same claim


def test_a_worker_stopped_between_two_renames_leaves_no_outputs(tmp_path: Path) -> None:
    """The parent stops its workers with SIGTERM: a worker killed after renaming its first
    output left that one in place ("interrupted inputs leave no output files")."""
    import signal
    import subprocess
    import sys

    import numpy as np
    import soundfile as sf

    sf.write(tmp_path / "in.wav", 0.1 * np.random.default_rng(0).standard_normal(8000), 8000)
    script = f"""
import os, signal
from nmfsep import batch
from nmfsep.options import SeparateOptions
batch._init_worker(os.getppid())
def killing(real):  # SIGTERM lands right after the first output is in place
    def place(src, dst):
        real(src, dst)
        if str(dst).endswith(".wav"):
            os.kill(os.getpid(), signal.SIGTERM)
    return place
os.replace, os.link = killing(os.replace), killing(os.link)
out = {str(tmp_path / "out")!r}
job = batch.Job({str(tmp_path / "in.wav")!r},
                {{"speech": out + "/speech.wav", "noise": out + "/noise.wav"}},
                SeparateOptions(), model=None)
batch.run_job(job)
"""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, env=env, timeout=300)
    assert r.returncode == 128 + signal.SIGTERM, r.stderr
    left = (
        sorted(p.name for p in (tmp_path / "out").rglob("*")) if (tmp_path / "out").exists() else []
    )
    assert left == [], left


def test_a_failed_job_removes_only_what_it_put_in_place(tmp_path: Path) -> None:
    """The rollback removed every output whose identity changed since the job started: a file
    that another run finished at one of its paths meanwhile went too."""
    import numpy as np
    import soundfile as sf

    from nmfsep.options import SeparateOptions

    sf.write(tmp_path / "in.wav", 0.1 * np.random.default_rng(0).standard_normal(8000), 8000)
    out = tmp_path / "out"
    others = out / "noise.wav"

    def another_run_finishes(path: str, done: int, total: int) -> None:
        if done:
            out.mkdir(exist_ok=True)
            others.write_bytes(b"another run's finished output")
            raise KeyboardInterrupt  # and this job is stopped

    job = batch.Job(str(tmp_path / "in.wav"),
                    {"speech": str(out / "speech.wav"), "noise": str(others)},
                    SeparateOptions(), model=None)  # fmt: skip
    with pytest.raises(KeyboardInterrupt):
        batch.run_job(job, progress=another_run_finishes)
    assert others.read_bytes() == b"another run's finished output"
    assert not (out / "speech.wav").exists()


def test_an_output_another_run_finished_meanwhile_is_kept(tmp_path: Path) -> None:
    """Without --overwrite, absence was checked when the batch was planned and the rename at the
    end replaced whatever was there by then: a concurrent run's finished output."""
    import numpy as np
    import soundfile as sf

    from nmfsep.options import SeparateOptions

    sf.write(tmp_path / "in.wav", 0.1 * np.random.default_rng(0).standard_normal(8000), 8000)
    out = tmp_path / "out"
    others = out / "noise.wav"

    def another_run_finishes(path: str, done: int, total: int) -> None:
        if done and not others.exists():
            out.mkdir(exist_ok=True)
            others.write_bytes(b"another run's finished output")

    outputs = {"speech": str(out / "speech.wav"), "noise": str(others)}
    job = batch.Job(str(tmp_path / "in.wav"), outputs, SeparateOptions(), model=None)
    record = batch.run_job(job, progress=another_run_finishes)
    assert record.status == "error", record
    assert "exists: another run wrote it while this one worked" in str(record.error)
    assert others.read_bytes() == b"another run's finished output"
    assert not (out / "speech.wav").exists()  # this job's other output is rolled back
    # with --overwrite (skip_existing=False) it is replaced
    job = batch.Job(str(tmp_path / "in.wav"), outputs, SeparateOptions(), model=None,
                    skip_existing=False)  # fmt: skip
    assert batch.run_job(job).status == "ok"
    assert sf.info(others).frames == 8000


def test_a_failed_overwrite_job_puts_the_old_outputs_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With --overwrite, a job that failed after renaming its outputs (here: the --save-model
    file) removed them, and the files they had replaced were gone too: the user kept neither
    the old outputs nor new ones."""
    import numpy as np
    import soundfile as sf

    from nmfsep.errors import ModelError
    from nmfsep.model import NMFModel
    from nmfsep.options import ClusterOptions

    rng = np.random.default_rng(0)
    sf.write(tmp_path / "in.wav", 0.1 * rng.standard_normal(16000), 8000)
    out = tmp_path / "out"
    out.mkdir()
    outputs = {"source1": str(out / "source1.wav"), "source2": str(out / "source2.wav")}
    olds = [*outputs.values(), str(out / "m.npz")]
    for path in olds:
        Path(path).write_bytes(f"old {Path(path).name}".encode())

    def full(self: NMFModel, path: object, **kw: object) -> None:
        raise ModelError("no space left on device", path=path)

    job = batch.Job(str(tmp_path / "in.wav"), outputs, ClusterOptions(n_sources=2, n_components=4),
                    save_model=str(out / "m.npz"), skip_existing=False)  # fmt: skip
    with monkeypatch.context() as m:
        m.setattr(NMFModel, "save", full)
        record = batch.run_job(job)
    assert record.status == "error" and "no space left" in str(record.error), record
    for path in olds:
        assert Path(path).read_bytes() == f"old {Path(path).name}".encode()
    assert sorted(p.name for p in out.iterdir()) == ["m.npz", "source1.wav", "source2.wav"]

    # interrupted likewise (KeyboardInterrupt after the renames)
    def stop(self: NMFModel, path: object, **kw: object) -> None:
        raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(NMFModel, "save", stop)
        with pytest.raises(KeyboardInterrupt):
            batch.run_job(job)
    assert Path(outputs["source1"]).read_bytes() == b"old source1.wav"
    # and a job that succeeds leaves no kept links behind
    assert batch.run_job(job).status == "ok"
    assert sf.info(outputs["source1"]).frames == 16000
    assert sorted(p.name for p in out.iterdir()) == ["m.npz", "source1.wav", "source2.wav"]


@pytest.mark.parametrize("appears", ["noise.wav", "separation.png"])
def test_the_plot_path_never_replaces_a_file_another_run_finished(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, appears: str
) -> None:
    """``--plot`` (the whole file in memory) wrote its audio and pictures with a plain rename:
    without --overwrite, a file another run put at one of its paths meanwhile was replaced."""
    pytest.importorskip("matplotlib")
    import numpy as np
    import soundfile as sf

    import nmfsep.separation
    from nmfsep.options import SeparateOptions

    sf.write(tmp_path / "in.wav", 0.1 * np.random.default_rng(0).standard_normal(8000), 8000)
    out = tmp_path / "out"
    real = nmfsep.separation.separate

    def another_run_finishes(*args: object, **kw: object) -> object:
        out.mkdir(exist_ok=True)
        (out / appears).write_bytes(b"another run's file")
        return real(*args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(nmfsep.separation, "separate", another_run_finishes)
    outputs = {"speech": str(out / "speech.wav"), "noise": str(out / "noise.wav")}
    job = batch.Job(str(tmp_path / "in.wav"), outputs, SeparateOptions(), model=None,
                    plot=str(out / "separation.png"))  # fmt: skip
    record = batch.run_job(job)
    assert record.status == "error", record
    assert "exists: another run wrote it while this one worked" in str(record.error)
    assert (out / appears).read_bytes() == b"another run's file"
    assert sorted(p.name for p in out.iterdir()) == [appears]  # this job's files rolled back
