"""Soak check: no memory growth over many separations, and a long mixed batch through the CLI.

1. **Python API, one process**: ``nmfsep.load_audio`` + ``nmfsep.separate`` (built-in model) on
   the same file ``--repeats`` times (default 200). The resident set size (RSS, psutil) is
   sampled at the start (after a warm-up run: imports, JIT caches), after 20 runs and at the end.
   Growth from "after 20" to the end is the leak signal: it must stay within ``--tolerance-mb``.
2. **CLI, one batch**: ``--batch`` (default 50) copies of the file plus a few corrupted ones
   (empty, text named ``.wav``, truncated header, NaN samples) in one directory, separated with
   ``nmfsep separate DIR -o OUT --json``. Every good file must have all its outputs (same length
   as the input), every bad file exactly one ``error:`` line naming it, the exit code must be 1,
   and no temporary file may be left behind.

3. **Kill and resume** (``--kill-batch``, default 1000 files, 5 % corrupted): one batch
   ``nmfsep separate DIR -o OUT -j 2 --json`` is killed with SIGKILL (the parent only) at a
   random moment ``--kills`` times (default 3), then run to the end. Checked: no nmfsep process
   is left after each kill (the workers die with their parent), every good file has all its
   outputs, each was done exactly once (an output put in place is never replaced by a later
   run: its inode is kept), each corrupted file is reported, no temporary or claim file is left.

Usage: ``python bench/soak.py [--input FILE] [--repeats 200] [--batch 50] [--jobs N]
[--kill-batch 1000] [--kills 3] [--seed 0] [--only kill]``
(default input: ``sample_audio/mix.wav``). Exit status 0 when every check passes.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _rss_mb() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def soak_api(path: Path, repeats: int, tolerance_mb: float) -> tuple[list[tuple[str, str]], bool]:
    import numpy as np

    import nmfsep

    model = nmfsep.default_model()
    y, sr = nmfsep.load_audio(path)
    nmfsep.separate(y, sr, model)  # warm-up: imports, JIT caches, BLAS buffers
    del y
    gc.collect()
    rss_start = _rss_mb()
    rss_20 = rss_start
    t0 = time.perf_counter()
    checksum = None
    for i in range(1, repeats + 1):
        y, sr = nmfsep.load_audio(path)
        result = nmfsep.separate(y, sr, model)
        total = sum(result.sources.values())
        err = float(np.max(np.abs(total - y)))
        first = float(np.sum(np.abs(result.sources[model.source_names[0]])))
        checksum = first if checksum is None else checksum
        if err > 1e-4 or first != checksum:
            print(f"run {i}: sources do not sum to the mix ({err:g}) or differ from run 1")
            return [], False
        del y, result, total
        if i == min(20, repeats):
            gc.collect()
            rss_20 = _rss_mb()
    gc.collect()
    rss_end = _rss_mb()
    seconds = time.perf_counter() - t0
    growth = rss_end - rss_20
    ok = growth <= tolerance_mb
    rows = [
        ("API runs", f"{repeats} x {path.name} ({seconds / repeats * 1000:.0f} ms each)"),
        ("RSS at start (after warm-up)", f"{rss_start:.1f} MB"),
        (f"RSS after {min(20, repeats)} runs", f"{rss_20:.1f} MB"),
        (f"RSS after {repeats} runs", f"{rss_end:.1f} MB"),
        (
            f"growth {min(20, repeats)} -> {repeats}",
            f"{growth:+.1f} MB (limit {tolerance_mb:g} MB): {'ok' if ok else 'FAIL'}",
        ),
    ]
    return rows, ok


def _corrupt_files(d: Path, good: Path) -> dict[str, str]:
    """Write the corrupted inputs; returns file name -> expected message."""
    import numpy as np
    import soundfile as sf

    data = good.read_bytes()
    (d / "bad_empty.wav").write_bytes(b"")
    (d / "bad_text.wav").write_text("not audio\n" * 50)
    (d / "bad_truncated.wav").write_bytes(data[:30])
    y = np.zeros((1600, 1), np.float32)
    y[800] = np.nan
    sf.write(d / "bad_nan.wav", y, 16000, subtype="FLOAT")
    return {
        "bad_empty.wav": "is empty (0 bytes)",
        "bad_text.wav": "not an audio file",
        "bad_truncated.wav": "malformed or truncated audio header",
        "bad_nan.wav": "contains NaN or infinite samples",
    }


def soak_cli(path: Path, n_good: int, jobs: int | None) -> tuple[list[tuple[str, str]], bool]:
    import soundfile as sf

    work = Path(tempfile.mkdtemp(prefix="nmfsep-soak-"))
    try:
        src, out = work / "in", work / "out"
        src.mkdir()
        for i in range(n_good):
            shutil.copy(path, src / f"good_{i:03d}{path.suffix}")
        bad = _corrupt_files(src, path)
        cmd = [sys.executable, "-m", "nmfsep", "separate", str(src), "-o", str(out), "--json"]
        if jobs is not None:
            cmd += ["-j", str(jobs)]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
        seconds = time.perf_counter() - t0
        errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
        summary = json.loads(proc.stdout) if proc.stdout.strip() else {"files": []}
        frames = sf.info(path).frames
        written = 0
        for i in range(n_good):
            outputs = list((out / f"good_{i:03d}").glob("*.wav"))
            if len(outputs) == 2 and all(sf.info(o).frames == frames for o in outputs):
                written += 1
        reported = sum(
            1
            for name, needle in bad.items()
            if sum(name in line for line in errors) == 1
            and any(name in line and needle in line for line in errors)
        )
        leftovers = [p for p in out.rglob("*") if p.name.endswith(".nmfsep-tmp")]
        checks = {
            "exit code 1": proc.returncode == 1,
            "all good files written": written == n_good,
            "each bad file: one error line": reported == len(bad) and len(errors) == len(bad),
            "no traceback": "Traceback" not in proc.stderr,
            "no temporary file left": not leftovers,
            "JSON summary counts": summary.get("summary", {}).get("failed") == len(bad)
            and summary.get("summary", {}).get("ok") == n_good,
        }
        rows = [
            ("CLI batch", f"{n_good} good + {len(bad)} corrupted files in {seconds:.1f} s"),
            ("exit code", str(proc.returncode)),
            ("good files with all outputs", f"{written} / {n_good}"),
            ("bad files reported (1 line each)", f"{reported} / {len(bad)}"),
            *(("", line) for line in errors),
            *((f"check: {name}", "ok" if ok else "FAIL") for name, ok in checks.items()),
        ]
        return rows, all(checks.values())
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _nmfsep_processes(marker: str) -> list[int]:
    import psutil

    found = []
    for proc in psutil.process_iter(["pid", "cmdline", "status"]):
        try:
            cmd = " ".join(proc.info["cmdline"] or [])
            if marker in cmd and proc.info["status"] != psutil.STATUS_ZOMBIE:
                found.append(proc.info["pid"])
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


def _wait_gone(marker: str, timeout: float = 20.0) -> list[int]:
    deadline = time.monotonic() + timeout
    left = _nmfsep_processes(marker)
    while left and time.monotonic() < deadline:
        time.sleep(0.1)
        left = _nmfsep_processes(marker)
    return left


def _sibling(path: str) -> str:
    p = Path(path)
    return str(p.with_name("noise.wav" if p.name == "speech.wav" else "speech.wav"))


def _alive(pids: list[int], timeout: float = 20.0) -> list[int]:
    """Those of ``pids`` still running (zombies count as gone) after up to ``timeout`` s."""
    import psutil

    deadline = time.monotonic() + timeout
    while True:
        alive = []
        for pid in pids:
            try:
                if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                    alive.append(pid)
            except psutil.NoSuchProcess:
                pass
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.1)


def _outputs(out: Path) -> dict[str, tuple[int, int]]:
    """Every output WAV under ``out`` -> (inode, mtime_ns)."""
    found = {}
    for dirpath, _dirs, files in os.walk(out):  # directories may vanish meanwhile: skipped
        for name in files:
            if name.endswith(".wav") and not name.startswith("."):
                p = Path(dirpath) / name
                try:
                    st = p.stat()
                except OSError:
                    continue
                found[str(p.relative_to(out))] = (st.st_ino, st.st_mtime_ns)
    return found


def soak_kill_resume(
    n_files: int, kills: int, jobs: int, seed: int, bad_fraction: float = 0.05
) -> tuple[list[tuple[str, str]], bool]:
    """1000 small files, 5 % corrupted, SIGKILL of the parent at random moments, resumed."""
    import random

    import numpy as np
    import soundfile as sf

    rng = random.Random(seed)
    work = Path(tempfile.mkdtemp(prefix="nmfsep-soak-kill-"))
    try:
        src, out = work / "in", work / "out"
        src.mkdir()
        sr, n = 16000, 8000  # 0.5 s each
        gen = np.random.default_rng(seed)
        t = np.arange(n) / sr
        n_bad = round(n_files * bad_fraction)
        bad_at = set(rng.sample(range(n_files), n_bad))
        kinds = ["empty", "text", "truncated", "nan"]
        good, bad = [], []
        for i in range(n_files):
            name = f"f{i:04d}.wav"
            if i in bad_at:
                kind = kinds[len(bad) % len(kinds)]
                if kind == "empty":
                    (src / name).write_bytes(b"")
                elif kind == "text":
                    (src / name).write_text("not audio\n" * 20)
                elif kind == "truncated":
                    (src / name).write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt ")
                else:
                    y = np.zeros(n, np.float32)
                    y[100] = np.nan
                    sf.write(src / name, y, sr, subtype="FLOAT")
                bad.append(name)
            else:
                f0 = 120 + 200 * gen.random()
                y = 0.2 * np.sin(2 * np.pi * f0 * t) + 0.05 * gen.standard_normal(n)
                sf.write(src / name, y.astype(np.float32), sr, subtype="PCM_16")
                good.append(name)
        marker = str(out)
        cmd = [sys.executable, "-m", "nmfsep", "separate", str(src), "-o", marker, "--json"]
        cmd += ["-j", str(jobs)]
        env = dict(os.environ, OMP_NUM_THREADS="1")
        rows: list[tuple[str, str]] = [
            ("kill/resume batch", f"{len(good)} good + {len(bad)} corrupted files, -j {jobs}")
        ]
        checks: dict[str, bool] = {}
        seen: dict[str, tuple[int, int]] = {}
        replaced: set[str] = set()
        t_all = time.perf_counter()
        partial: set[str] = set()
        for k in range(kills):
            before = len(seen)
            t0 = time.perf_counter()
            proc = subprocess.Popen(
                cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT, env=env
            )
            # a random moment once this run is producing outputs (start-up is a few seconds)
            start = len(_outputs(out))
            deadline = time.monotonic() + 120
            while len(_outputs(out)) <= start and proc.poll() is None:
                if time.monotonic() > deadline:
                    break
                time.sleep(0.1)
            delay = rng.uniform(0.2, 4.0)
            time.sleep(delay)
            if proc.poll() is not None:
                rows.append((f"kill {k + 1}", "the run ended before the kill"))
            import psutil

            try:
                workers = [c.pid for c in psutil.Process(proc.pid).children(recursive=True)]
            except psutil.NoSuchProcess:
                workers = []
            proc.kill()
            proc.wait()
            left = _wait_gone(marker) + _alive(workers)
            checks[f"kill {k + 1}: no nmfsep process left (parent and workers)"] = not left
            now = _outputs(out)
            replaced |= {p for p, ident in seen.items() if now.get(p, ident)[0] != ident[0]}
            # only complete inputs (both outputs) count as done: a kill between an input's two
            # renames leaves one output and a stale claim, and that input is redone
            complete = {p: i for p, i in now.items() if _sibling(p) in now}
            partial.update(p for p in now if _sibling(p) not in now)
            seen.update({p: ident for p, ident in complete.items() if p not in seen})
            done = len(seen) // 2
            rows.append(
                (
                    f"kill {k + 1}",
                    f"SIGKILL {delay:.1f} s into the work ({time.perf_counter() - t0:.1f} s after "
                    f"start): {done} inputs done so far (+{(len(seen) - before) // 2}), "
                    f"{len(left)} process(es) left",
                )
            )
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env)
        rows.append(("final run", f"exit {proc.returncode} in {time.perf_counter() - t0:.1f} s"))
        summary = json.loads(proc.stdout) if proc.stdout.strip() else {}
        now = _outputs(out)
        replaced |= {p for p, ident in seen.items() if now.get(p, ident)[0] != ident[0]}
        complete = 0
        for name in good:
            stem = Path(name).stem
            files = [out / stem / f"{s}.wav" for s in ("speech", "noise")]
            if all(f.is_file() and sf.info(f).frames == n for f in files):
                complete += 1
        errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
        reported = sum(any(b in line for line in errors) for b in bad)
        leftovers = [
            p
            for p in out.rglob("*")
            if p.name.endswith(".nmfsep-tmp") or p.name.endswith(".nmfsep-lock")
        ]
        outputs_of_bad = [b for b in bad if (out / Path(b).stem).exists()]
        checks.update(
            {
                "every good file has all its outputs": complete == len(good),
                "each good file done exactly once (no complete output replaced)": not replaced,
                "each corrupted file reported, none has outputs": reported == len(bad)
                and not outputs_of_bad,
                "final exit code 1 (the corrupted files)": proc.returncode == 1,
                "final JSON status failed": summary.get("status") == "failed",
                "no temporary or claim file left": not leftovers,
                "no nmfsep process left": not _wait_gone(marker, 5.0),
                "no traceback": "Traceback" not in proc.stderr,
            }
        )
        s = summary.get("summary", {})
        rows += [
            ("good files with all outputs", f"{complete} / {len(good)}"),
            ("complete inputs redone by a later run", str(len(replaced) // 2)),
            ("half-renamed inputs (killed between renames), redone", str(len(partial))),
            (
                "final run: ok / skipped / failed",
                f"{s.get('ok')} / {s.get('skipped')} / {s.get('failed')}",
            ),
            ("corrupted files reported", f"{reported} / {len(bad)}"),
            ("temp/claim files left", str(len(leftovers))),
            *(("", str(p.relative_to(out))) for p in leftovers[:10]),
            ("total wall time", f"{time.perf_counter() - t_all:.1f} s"),
            *((f"check: {name}", "ok" if ok else "FAIL") for name, ok in checks.items()),
        ]
        return rows, all(checks.values())
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _table(rows: list[tuple[str, str]]) -> str:
    width = max(len(a) for a, _ in rows)
    return "\n".join(f"{a:<{width}}  {b}".rstrip() for a, b in rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--input", type=Path, default=ROOT / "sample_audio" / "mix.wav")
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--batch", type=int, default=50)
    parser.add_argument("--jobs", type=int, default=None, help="-j for the CLI batch")
    parser.add_argument("--tolerance-mb", type=float, default=20.0)
    parser.add_argument("--kill-batch", type=int, default=1000, help="files of the kill soak")
    parser.add_argument("--kills", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", choices=["api", "cli", "kill"], default=None)
    args = parser.parse_args(argv)
    try:
        import psutil  # noqa: F401
    except ImportError:
        print("bench/soak.py needs psutil: pip install 'nmfsep[bench]'", file=sys.stderr)
        return 2
    rows: list[tuple[str, str]] = []
    ok = True
    if args.only in (None, "api"):
        part, good = soak_api(args.input, args.repeats, args.tolerance_mb)
        rows, ok = [*rows, *part, ("", "")], ok and good
    if args.only in (None, "cli"):
        part, good = soak_cli(args.input, args.batch, args.jobs)
        rows, ok = [*rows, *part, ("", "")], ok and good
    if args.only in (None, "kill"):
        part, good = soak_kill_resume(args.kill_batch, args.kills, args.jobs or 2, args.seed)
        rows, ok = [*rows, *part], ok and good
    print(_table(rows))
    print("soak:", "PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
