"""Scale benchmark: memory vs file length, real-time factor, 1 -> 2 core speed-up, start-up time.

Separate (5 and 60 min) and cluster (1 and 10 min, 44.1 kHz stereo): peak RSS must stay flat in
the file's length (both stream through the same engine).

Runs the real command line (``nmfsep separate FILE -o OUT``, default model) in a subprocess on
long files made by looping short recordings (``../shared/data`` when present, else
``sample_audio``), and measures the peak RSS of the process tree (psutil, polled every 20 ms),
the wall time and the real-time factor (audio seconds per wall second).

    python bench/scale.py            # 5 and 60 minute files (about 5 minutes in all)
    python bench/scale.py --quick    # 1 and 5 minute files

The machine's load average is printed: on a shared machine, concurrent work slows every figure.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import psutil
import soundfile as sf

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
NMFSEP = str(BIN / "nmfsep") if (BIN / "nmfsep").exists() else None
SHARED = ROOT.parent / "shared" / "data"


def _clip(pattern: str, fallback: str) -> tuple[np.ndarray, int]:
    """A recording to loop: the first ``../shared/data`` match, else ``sample_audio/fallback``."""
    for path in (*sorted(SHARED.glob(pattern)), ROOT / "sample_audio" / fallback):
        if path.is_file():
            y, sr = sf.read(path, dtype="float32", always_2d=True)
            return y.mean(axis=1), sr
    raise SystemExit(f"no source audio found for {pattern}")


def make_long(path: Path, clip: np.ndarray, sr: int, seconds: float, channels: int) -> None:
    """Loop ``clip`` to ``seconds`` (written block by block: no big array in memory)."""
    if path.exists():
        return
    total = int(seconds * sr)
    # a slowly varying gain so that the loop is not exactly periodic
    with sf.SoundFile(path, "w", sr, channels, subtype="PCM_16") as f:
        done = 0
        while done < total:
            n = min(clip.size, total - done)
            gain = 0.8 + 0.2 * np.sin(2 * np.pi * done / (sr * 37.0))
            block = gain * clip[:n]
            if channels == 2:
                block = np.stack([block, 0.7 * np.roll(block, 17)], axis=1)
            f.write(block)
            done += n


def run(cmd: list[str]) -> tuple[float, float]:
    """Run ``cmd``; (wall seconds, peak RSS of the process tree in MB)."""
    t0 = time.perf_counter()
    proc = psutil.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak = 0
    while proc.poll() is None:
        try:
            procs = [proc, *proc.children(recursive=True)]
            peak = max(peak, sum(p.memory_info().rss for p in procs))
        except psutil.Error:
            pass
        time.sleep(0.02)
    wall = time.perf_counter() - t0
    err = proc.stderr.read().decode() if proc.stderr else ""
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{err}")
    return wall, peak / 2**20


def nmfsep(*args: str) -> list[str]:
    return [NMFSEP, *args] if NMFSEP else [sys.executable, "-m", "nmfsep", *args]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 and 5 minute files")
    parser.add_argument("--keep", type=Path, help="keep the generated files in this directory")
    args = parser.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="nmfsep-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    short_min, long_min = (1, 5) if args.quick else (5, 60)
    music, msr = _clip("d04*/mix.wav", "guitar_drums_mix.wav")  # 44.1 kHz music
    speech, ssr = _clip("d01*/mix.wav", "mix.wav")  # 16 kHz speech in noise
    rows: list[tuple[str, ...]] = []
    print(f"load average before: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores", flush=True)
    try:
        cases = [
            (f"44.1 kHz stereo, {short_min} min", music, msr, short_min, 2),
            (f"44.1 kHz stereo, {long_min} min", music, msr, long_min, 2),
            (f"16 kHz mono speech, {short_min} min", speech, ssr, short_min, 1),
        ]
        rss: dict[str, float] = {}
        for label, clip, sr, minutes, channels in cases:
            src = work / f"{sr}_{channels}ch_{minutes}min.wav"
            make_long(src, clip, sr, minutes * 60, channels)
            out = work / "out"
            wall, peak = run(nmfsep("separate", str(src), "-o", str(out), "--overwrite", "-q"))
            rss[label] = peak
            rtf = minutes * 60 / wall
            rows.append((label, f"{wall:.1f} s", f"{rtf:.1f}x", f"{peak:.0f} MB"))
            print(" | ".join(rows[-1]), flush=True)
        ratio = rss[cases[1][0]] / rss[cases[0][0]]
        print(f"peak RSS {long_min} min / {short_min} min: {ratio:.2f}", flush=True)

        # cluster streams too: a sample of frames, then blocks; memory flat in file length
        cluster_rss: dict[int, float] = {}
        for minutes in (1, 10):
            src = work / f"{msr}_2ch_{minutes}min.wav"
            make_long(src, music, msr, minutes * 60, 2)
            cmd = nmfsep("cluster", str(src), "-o", str(work / "c"), "--overwrite", "-q")
            wall, peak = run(cmd)
            cluster_rss[minutes] = peak
            label = f"cluster, 44.1 kHz stereo, {minutes} min"
            rows.append((label, f"{wall:.1f} s", f"{minutes * 60 / wall:.1f}x", f"{peak:.0f} MB"))
            print(" | ".join(rows[-1]), flush=True)
        cluster_ratio = cluster_rss[10] / cluster_rss[1]
        print(f"cluster peak RSS 10 min / 1 min: {cluster_ratio:.2f}", flush=True)

        # 1 -> 2 cores: one long file (blocks on 1 or 2 threads), and a batch of files
        long16 = work / f"{ssr}_1ch_{short_min}min.wav"
        t1, _ = run(nmfsep("separate", str(long16), "-o", str(work / "o1"), "-q", "-j", "1"))
        t2, _ = run(nmfsep("separate", str(long16), "-o", str(work / "o2"), "-q", "-j", "2"))
        speed = [
            ("one file, 1 -> 2 block threads", f"{t1:.1f} s", f"{t2:.1f} s", f"{t1 / t2:.2f}x")
        ]
        files = work / "batch"
        files.mkdir(exist_ok=True)
        for i in range(4):
            make_long(files / f"f{i}.wav", np.roll(speech, 1000 * i), ssr, 45, 1)
        b1, _ = run(nmfsep("separate", str(files), "-o", str(work / "b1"), "-q", "-j", "1"))
        b2, _ = run(nmfsep("separate", str(files), "-o", str(work / "b2"), "-q", "-j", "2"))
        speed.append(
            ("batch of 4 x 45 s, -j 1 -> -j 2", f"{b1:.1f} s", f"{b2:.1f} s", f"{b1 / b2:.2f}x")
        )
        for row in speed:
            print(" | ".join(row), flush=True)

        # start-up
        def best(cmd: list[str], n: int = 5) -> float:
            return min(run(cmd)[0] for _ in range(n))

        tiny = work / "tiny.wav"
        make_long(tiny, speech, ssr, 1.0, 1)
        startup = [
            ("nmfsep --help", best(nmfsep("--help"))),
            ("python -c 'import nmfsep.cli'", best([sys.executable, "-c", "import nmfsep.cli"])),
            (
                "nmfsep separate (1 s file)",
                best(nmfsep("separate", str(tiny), "-o", str(work / "t"), "--overwrite", "-q"), 3),
            ),
        ]
        for name, sec in startup:
            print(f"{name} | {sec:.2f} s", flush=True)
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)

    print()
    print(f"load average after: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    print()
    print("| case | wall | real-time factor | peak RSS |")
    print("| --- | --- | --- | --- |")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    print(f"\npeak RSS ratio {long_min} min / {short_min} min (44.1 kHz stereo): {ratio:.2f}")
    print(f"cluster peak RSS ratio 10 min / 1 min (44.1 kHz stereo): {cluster_ratio:.2f}\n")
    print("| 1 -> 2 cores | 1 core | 2 cores | speed-up |")
    print("| --- | --- | --- | --- |")
    for row in speed:
        print("| " + " | ".join(row) + " |")
    print("\n| start-up | best wall time |")
    print("| --- | --- |")
    for name, sec in startup:
        print(f"| `{name}` | {sec:.2f} s |")


if __name__ == "__main__":
    main()
