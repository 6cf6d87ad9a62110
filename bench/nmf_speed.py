"""Speed of nmfsep's NMF against scikit-learn's multiplicative updates (``make bench``).

|STFT| of 60 s of real audio (``../shared/data`` if present, else ``sample_audio/``; files at the
first file's sample rate are concatenated and looped), n_fft 2048, hop 512, K = 64, 200 iterations,
beta in {2, 1, 0}:

* full problem (W and H learned), both libraries from the same NNDSVDa W, H;
* H-only problem (W fixed, the separation case): scikit-learn's ``NMF.transform`` path
  (``non_negative_factorization(X=V.T, H=W.T, update_H=False)``, which starts from the constant
  ``sqrt(mean(V)/K)``); nmfsep with ``fixed_W=True`` from the same constant.

Orientation: nmfsep's V (n_freq, n_frames) = W H is scikit-learn's X = V.T = W_sk H_sk with
W_sk = H.T and H_sk = W.T. Both run with tol=0 (exactly 200 iterations) in float32 with one BLAS
thread (threadpoolctl), then two. Times are the minimum over interleaved repeats; with one thread
they are the process's CPU time (stable on a busy machine), with two the wall time.

Printed: ms per iteration, ratio nmfsep/sklearn, both final losses (same
``nmfsep.beta_divergence``), their relative difference, and the time nmfsep needs to reach
scikit-learn's 200-iteration loss (its iterations found with ``check_every=1``, then timed alone;
for the H-only problem from nmfsep's default H initialisation).

Usage: ``python bench/nmf_speed.py [--seconds 60] [--iters 200] [--threads 1,2] [--repeats 3]``
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

K = 64
N_FFT = 2048
HOP = 512


def load_spectrogram(seconds: float) -> tuple[np.ndarray, str]:
    import soundfile as sf

    from nmfsep.spectral import STFTConfig, stft

    shared = ROOT.parent / "shared" / "data"
    root = shared if shared.is_dir() else ROOT / "sample_audio"
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in (".wav", ".flac", ".ogg"))
    if not files:
        raise SystemExit(f"no audio files under {root}")
    chunks, sr0 = [], None
    for f in files:
        y, sr = sf.read(f, dtype="float32", always_2d=True)
        if sr0 is None:
            sr0 = sr
        if sr == sr0:
            chunks.append(y.mean(axis=1))
    assert sr0 is not None
    y = np.concatenate(chunks)
    n = int(seconds * sr0)
    y = np.tile(y, -(-n // y.size))[:n]
    S = stft(y, STFTConfig(n_fft=N_FFT, hop_length=HOP))
    # floor: scikit-learn refuses zeros in X for beta <= 0 (silent padding has exact zeros)
    V = np.ascontiguousarray(np.maximum(np.abs(S), 1e-6), dtype=np.float32)
    return V, f"{root} ({len(chunks)} files at {sr0} Hz, {seconds:g} s)"


def clock(threads: int) -> float:
    """CPU time of the process with 1 thread (robust on a busy machine), else wall time."""
    return time.process_time() if threads == 1 else time.perf_counter()


def best_pair(f1, f2, repeats: int, threads: int) -> tuple[float, object, float, object]:
    """Min time of each of two functions over interleaved repeats (fair under varying load)."""
    b1 = b2 = np.inf
    o1 = o2 = None
    for _ in range(repeats):
        t0 = clock(threads)
        o1 = f1()
        t1 = clock(threads)
        o2 = f2()
        t2 = clock(threads)
        b1, b2 = min(b1, t1 - t0), min(b2, t2 - t1)
    return b1, o1, b2, o2


def sk_full(V, W0, H0, beta, iters):
    from sklearn.decomposition import non_negative_factorization

    Wsk, Hsk, _ = non_negative_factorization(
        V.T, W=H0.T.copy(), H=W0.T.copy(), n_components=K, init="custom", solver="mu",
        beta_loss=beta, max_iter=iters, tol=0,
    )  # fmt: skip
    return Hsk.T, Wsk.T  # nmfsep orientation: W, H


def sk_h_only(V, W, beta, iters):
    from sklearn.decomposition import non_negative_factorization

    Wsk, _, _ = non_negative_factorization(
        V.T, H=np.ascontiguousarray(W.T), n_components=K, init="custom", update_H=False,
        solver="mu", beta_loss=beta, max_iter=iters, tol=0,
    )  # fmt: skip
    return W, Wsk.T


def iterations_to_reach(run, target: float, iters: int) -> int | None:
    """Smallest iteration count whose objective is <= target (run with check_every=1)."""
    hist: list[tuple[int, float]] = []
    run(iters, lambda n, loss: hist.append((n, loss)))
    for n, loss in hist:
        if loss <= target:
            return n
    return None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--iters", type=int, default=200)
    ap.add_argument("--threads", default="1,2", help="BLAS thread counts, comma separated")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--betas", default="2,1,0")
    args = ap.parse_args()

    from threadpoolctl import threadpool_limits

    from nmfsep.nmf import beta_divergence, fit_nmf

    V, desc = load_spectrogram(args.seconds)
    iters = args.iters
    betas = [float(b) for b in args.betas.split(",")]
    print(f"data: {desc}; V {V.shape[0]}x{V.shape[1]} float32, K={K}, {iters} iterations")
    # warm-up: numba compile / cache load outside the timings
    fit_nmf(V[:, :64], n_components=4, beta=0.5, max_iter=2, check_every=1, tol=1e-9)
    for b in betas:
        fit_nmf(V[:, :64], n_components=4, beta=b, max_iter=2, check_every=1, tol=1e-9)
        fit_nmf(V, W=np.ones((V.shape[0], 2), np.float32), fixed_W=True, beta=b, max_iter=1)

    init = fit_nmf(V, n_components=K, max_iter=0, w_norm=None, random_state=0)
    W0, H0 = init.W, init.H
    header = (
        f"{'problem':<7} {'beta':>4} {'thr':>3} {'sklearn ms/it':>13} {'nmfsep ms/it':>12} "
        f"{'ratio':>6} {'speed-up':>8} {'sklearn loss':>13} {'nmfsep loss':>13} {'rel diff':>9} "
        f"{'reach: it':>9} {'reach: s':>8} {'sk 200 it s':>11}"
    )
    print(header)
    print("-" * len(header))
    for threads in [int(t) for t in args.threads.split(",")]:
        with threadpool_limits(threads):
            for beta in betas:
                for problem in ("full", "H-only"):
                    if problem == "full":

                        def sk(beta=beta):
                            return sk_full(V, W0, H0, beta, iters)

                        def ours(n=iters, cb=None, beta=beta):
                            return fit_nmf(
                                V, W=W0, H=H0, beta=beta, max_iter=n, tol=0,
                                check_every=1, callback=cb,
                            )  # fmt: skip

                        reach = ours
                    else:
                        Wf = fixed_bases[beta]
                        avg = np.sqrt(V.mean() / K)
                        Hc = np.full((K, V.shape[1]), avg, np.float32)

                        def sk(beta=beta, Wf=Wf):
                            return sk_h_only(V, Wf, beta, iters)

                        def ours(n=iters, cb=None, beta=beta, Wf=Wf, Hc=Hc):
                            return fit_nmf(
                                V, W=Wf, H=Hc, fixed_W=True, beta=beta, max_iter=n, tol=0,
                                check_every=1, callback=cb,
                            )  # fmt: skip

                        def reach(n=iters, cb=None, beta=beta, Wf=Wf):
                            return fit_nmf(
                                V, W=Wf, fixed_W=True, beta=beta, max_iter=n, tol=0,
                                check_every=1, callback=cb,
                            )  # fmt: skip

                    t_sk, sk_out, t_us, res = best_pair(sk, ours, args.repeats, threads)
                    Wsk, Hsk = sk_out
                    l_sk = beta_divergence(V, Wsk @ Hsk, beta)
                    l_us = beta_divergence(V, res.W @ res.H, beta)
                    if problem == "full" and threads == 1:
                        fixed_bases[beta] = res.W
                    n_max = (3 * iters) // 2
                    n_reach = iterations_to_reach(reach, l_sk * (1 + 1e-6), n_max)
                    if n_reach is None:
                        reach_s = "never"
                        n_txt = f">{n_max}"
                    else:
                        t_reach, _, _, _ = best_pair(
                            lambda n=n_reach, f=reach: f(n), lambda: None, args.repeats, threads
                        )
                        reach_s = f"{t_reach:.2f}"
                        n_txt = str(n_reach)
                    print(
                        f"{problem:<7} {beta:>4g} {threads:>3} {1e3 * t_sk / iters:>13.2f} "
                        f"{1e3 * t_us / iters:>12.2f} {t_us / t_sk:>6.2f} {t_sk / t_us:>7.2f}x "
                        f"{l_sk:>13.6g} {l_us:>13.6g} {abs(l_us - l_sk) / l_sk:>9.1e} "
                        f"{n_txt:>9} {reach_s:>8} {t_sk:>11.2f}",
                        flush=True,
                    )


fixed_bases: dict[float, np.ndarray] = {}

if __name__ == "__main__":
    main()
