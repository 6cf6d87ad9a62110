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

Usage: ``python bench/soak.py [--input FILE] [--repeats 200] [--batch 50] [--jobs N]``
(default input: ``sample_audio/mix.wav``). Exit status 0 when every check passes.
"""

from __future__ import annotations

import argparse
import gc
import json
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
    args = parser.parse_args(argv)
    try:
        import psutil  # noqa: F401
    except ImportError:
        print("bench/soak.py needs psutil: pip install 'nmfsep[bench]'", file=sys.stderr)
        return 2
    api_rows, api_ok = soak_api(args.input, args.repeats, args.tolerance_mb)
    cli_rows, cli_ok = soak_cli(args.input, args.batch, args.jobs)
    print(_table([*api_rows, ("", ""), *cli_rows]))
    print("soak:", "PASS" if api_ok and cli_ok else "FAIL")
    return 0 if api_ok and cli_ok else 1


if __name__ == "__main__":
    sys.exit(main())
