"""Speed benchmark, in one run: process CPU time with one BLAS thread, against peers measured here.

    .venv/bin/python bench/speed.py [--quick]

* **train**: ``train_model`` (the defaults) on the dev set's first training clips (speech +
  noise, ``../shared/data`` or ``sample_audio``) vs the scikit-learn baseline a user would write
  (KL-NMF, 32 bases per source, ``|STFT|`` n_fft 2048 / hop 512, 200 multiplicative-update
  iterations, ``tol=0``) on the same clips; ratio = baseline CPU / nmfsep CPU (>= 1: faster).
* **separate**: real-time factor per CPU-second of ``nmfsep.separate`` (built-in model,
  defaults) on 5 minutes of 16 kHz mono speech in noise and 5 minutes of 44.1 kHz stereo music.
* **cluster**: real-time factor per CPU-second of ``cluster_separate`` on 1 minute of 16 kHz
  (the default ``features="auto"``, which runs the built-in model over the file as its guide),
  and its ratio to the same call with ``features="mfcc0"`` (no guide) in the same run.
* **evaluate**: CPU time of ``evaluate_files`` (BSS-eval + SI-SDR) on a 10 s file.
* **end to end**: wall time of ``nmfsep separate`` on a 10 s file in a fresh process (start-up
  included), best of 5.
* **GFLOP/s**: the engine's activation solve (fixed W, KL, 20 iterations: two products of
  W (rows x K) with a (K x frames) matrix per iteration) against one plain ``sgemm`` of the same
  shape measured in this run — how close the hot loop is to the machine's GEMM speed.

CPU time (``time.process_time``) is used because wall time on a shared machine swings 2x.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np
import soundfile as sf
from threadpoolctl import threadpool_limits

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"


def cpu(fn, repeats: int = 1) -> float:
    """Best process CPU time of ``fn()`` over ``repeats`` runs."""
    best = float("inf")
    for _ in range(repeats):
        t0 = time.process_time()
        fn()
        best = min(best, time.process_time() - t0)
    return best


def clip(pattern: str, fallback: str) -> tuple[np.ndarray, int]:
    for path in (*sorted(SHARED.glob(pattern)), ROOT / "sample_audio" / fallback):
        if path.is_file():
            y, sr = sf.read(path, dtype="float32", always_2d=True)
            return y.mean(axis=1), sr
    raise SystemExit(f"no audio for {pattern}")


def loop(y: np.ndarray, n: int, channels: int = 1) -> np.ndarray:
    out = np.tile(y, -(-n // y.size))[:n]
    if channels == 2:
        return np.stack([out, 0.7 * np.roll(out, 17)])
    return out[np.newaxis]


def sklearn_baseline(examples: dict[str, np.ndarray], sr: int) -> None:
    import librosa
    from sklearn.decomposition import NMF

    for y in examples.values():
        V = np.abs(librosa.stft(y, n_fft=2048, hop_length=512)).T + 1e-9
        NMF(32, beta_loss="kullback-leibler", solver="mu", max_iter=200, tol=0, init="nndsvda",
            random_state=0).fit(V)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shorter files")
    args = parser.parse_args()
    threadpool_limits(1)
    from nmfsep.evaluation import evaluate_files
    from nmfsep.model import default_model
    from nmfsep.options import TrainOptions
    from nmfsep.separation import cluster_separate, separate
    from nmfsep.training import train_model

    rows: list[tuple[str, str, str, str]] = []
    print(f"load average: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores", flush=True)

    # -- train
    speech, ssr = clip("d01*/train_speech.wav", "train_speech.wav")
    noise, _ = clip("d01*/train_noise.wav", "train_noise.wav")
    examples = {"speech": speech, "noise": noise}
    secs = f"{speech.size / ssr:.0f} s speech + {noise.size / ssr:.0f} s noise"
    t_sk = cpu(lambda: sklearn_baseline(examples, ssr))
    model_holder = {}

    def train() -> None:
        model_holder["m"] = train_model(
            {k: [v[np.newaxis]] for k, v in examples.items()}, sr=ssr, options=TrainOptions()
        )

    t_nm = cpu(train)
    rows.append(("train (" + secs + ")", f"{t_nm:.2f} CPU-s", f"sklearn {t_sk:.2f} CPU-s",
                 f"{t_sk / t_nm:.2f}x (target >= 1)"))  # fmt: skip
    print(" | ".join(rows[-1]), flush=True)

    # -- separate
    model = default_model()
    minutes = 1 if args.quick else 5
    mix16, sr16 = clip("d01*/mix.wav", "mix.wav")
    music, sr44 = clip("d04*/mix.wav", "guitar_drums_mix.wav")
    for label, y, sr, target in (
        (f"separate, 16 kHz mono, {minutes} min", loop(mix16, minutes * 60 * sr16), sr16, 100),
        (f"separate, 44.1 kHz stereo, {minutes} min", loop(music, minutes * 60 * sr44, 2), sr44,
         40),
    ):  # fmt: skip
        separate(y[:, : sr * 2], sr, model)  # warm-up (numba, caches)
        # the built-in path (its recommended settings: free bases, refiner, blends), then the
        # model trained above (fixed bases on the analysis bands: what a per-case model gets)
        for tag, use in (("built-in path", model), ("trained model", model_holder["m"])):
            t = cpu(lambda y=y, sr=sr, use=use: separate(y, sr, use))
            rtf = y.shape[1] / sr / t
            rows.append((f"{label}, {tag}", f"{t:.2f} CPU-s", f"{rtf:.1f}x real time",
                         f"target >= {target}x"))  # fmt: skip
            print(" | ".join(rows[-1]), flush=True)

    # -- cluster
    y = loop(mix16, 60 * sr16)
    cluster_separate(y[:, :sr16], sr16)
    t = cpu(lambda: cluster_separate(y, sr16))
    t_plain = cpu(lambda: cluster_separate(y, sr16, features="mfcc0"))
    rows.append(("cluster, 16 kHz mono, 1 min", f"{t:.2f} CPU-s", f"{60 / t:.1f}x real time",
                 f"target >= 30x; {t / t_plain:.2f}x the CPU of --features mfcc0"))  # fmt: skip
    print(" | ".join(rows[-1]), flush=True)

    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        ten = loop(mix16, 10 * sr16)[0]
        sf.write(d / "mix.wav", ten, sr16, subtype="PCM_16")
        ref = loop(speech, 10 * sr16)[0]
        sf.write(d / "speech.wav", ref, sr16, subtype="PCM_16")
        result = separate(ten, sr16, model)
        sf.write(d / "est.wav", result.sources["speech"][0], sr16, subtype="FLOAT")
        evaluate_files([d / "est.wav"], [d / "speech.wav"], mixture=d / "mix.wav")  # warm-up
        t = cpu(lambda: evaluate_files([d / "est.wav"], [d / "speech.wav"], mixture=d / "mix.wav"))
        rows.append(("evaluate, 10 s file", f"{t:.2f} CPU-s", "", "target <= 1 s"))
        print(" | ".join(rows[-1]), flush=True)

        cmd = [sys.executable, "-m", "nmfsep", "separate", str(d / "mix.wav"), "-o",
               str(d / "out"), "--overwrite", "-q"]  # fmt: skip
        walls = []
        for _ in range(5):
            t0 = time.perf_counter()
            subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
            walls.append(time.perf_counter() - t0)
        rows.append(("end to end, 10 s file (process start included)", f"{min(walls):.2f} wall-s",
                     f"median {np.median(walls):.2f} s", "target <= 0.6 s"))  # fmt: skip
        print(" | ".join(rows[-1]), flush=True)

    # -- GFLOP/s of the activation solve vs plain sgemm of the same shape
    from nmfsep.engine import SeparationPlan, fit_masks
    from nmfsep.options import SeparateOptions

    plan = SeparationPlan.create(model, sr=sr16, options=SeparateOptions(free_components=0))
    frames = 2000
    X = np.abs(np.random.default_rng(0).standard_normal((plan.config.n_freq, frames)))
    X = X.astype(np.float32) + 0.1
    W = plan.W_analysis if plan.W_analysis is not None else plan.W
    rows_, K = W.shape
    iters = plan.options.max_iter
    t_solve = cpu(lambda: fit_masks(plan, X, None), repeats=3)
    H = np.ones((K, frames), np.float32)
    t_gemm = cpu(lambda: [W @ H for _ in range(10)], repeats=3) / 10
    flops = 2.0 * rows_ * K * frames
    gf_solve = 2 * iters * flops / t_solve / 1e9
    gf_gemm = flops / t_gemm / 1e9
    rows.append((f"activation solve ({rows_} x {K} bases, {frames} frames, {iters} it)",
                 f"{gf_solve:.1f} GFLOP/s", f"sgemm {gf_gemm:.1f} GFLOP/s",
                 f"{gf_solve / gf_gemm:.0%} of sgemm (masks included)"))  # fmt: skip
    print(" | ".join(rows[-1]), flush=True)

    print()
    print("| what | nmfsep | peer / rate | ratio / target |")
    print("| --- | --- | --- | --- |")
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
