"""Exploration: combine the built-in NMF path with a statistical noise tracker (issue 11).

    OMP_NUM_THREADS=1 .venv/bin/python bench/hybrid.py [PER_FOLD] [RECIPE]

The built-in path loses to the decision-directed Wiener filter at high SNR, where the unseen
voice leaks into the free noise bases, and wins at low SNR, where non-stationary noise defeats
minimum statistics. Each rule below takes the NMF speech estimate ``s`` (time domain, the
shipped settings), its residual ``n = y - s`` and the mixture's minimum-statistics noise PSD on
the DD filter's 32 ms grid, and makes one gain. Printed per rule: mean SDRi, STOI, share above
DD-Wiener, worst mixture, mean by SNR. Uses the fold models and peers cached by
``bench/generalise.py``.
"""

from __future__ import annotations

import json
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("PYTHONWARNINGS", "ignore")

N_FFT, HOP, SR = 512, 128, 16000


def _smooth(P: np.ndarray, alpha: float) -> np.ndarray:
    out = np.empty_like(P)
    acc = P[:, 0].copy()
    for t in range(P.shape[1]):
        acc = alpha * acc + (1 - alpha) * P[:, t]
        out[:, t] = acc
    return out


def rules(y: np.ndarray, s: np.ndarray, s_dd: np.ndarray) -> dict[str, np.ndarray]:
    import generalise as g
    from scipy.signal import istft, stft

    def st(x):
        return stft(x, fs=SR, window="hann", nperseg=N_FFT, noverlap=N_FFT - HOP)[2]

    def inv(Z):
        x = istft(Z, fs=SR, window="hann", nperseg=N_FFT, noverlap=N_FFT - HOP)[1]
        out = np.zeros(len(y))
        out[: min(len(y), len(x))] = x[: len(y)]
        return out

    Y, S = st(y), st(s)
    N = Y - S
    P = np.abs(Y) ** 2
    lam_ms = g.min_stat_noise(P, alpha_s=0.85, frames=round(1.5 * SR / HOP))
    lam_nmf = np.maximum(_smooth(np.abs(N) ** 2, 0.85), 1e-12)
    m = np.clip(np.abs(S) / np.maximum(np.abs(Y), 1e-12), 0, 1)
    G_dd = g.dd_gain(P, lam_ms)
    out: dict[str, np.ndarray] = {"nmf": s, "dd": s_dd}
    out["ens65"] = 0.65 * s + 0.35 * s_dd
    out["ens50"] = 0.5 * s + 0.5 * s_dd
    out["dd_nmfnoise"] = inv(g.dd_gain(P, lam_nmf) * Y)
    for c in (1.0, 2.0, 4.0):
        out[f"dd_min{c:g}"] = inv(g.dd_gain(P, np.minimum(lam_nmf, c * lam_ms)) * Y)
    for a in (0.25, 0.5, 0.75):
        out[f"dd_pow{a:g}"] = inv(g.dd_gain(P, lam_nmf**a * lam_ms ** (1 - a)) * Y)
    # the weight of the NMF noise estimate from the mixture's estimated SNR (NMF speech / rest)
    snr_est = 10 * np.log10(
        max(float(np.sum(s**2)), 1e-12) / max(float(np.sum((y - s) ** 2)), 1e-12)
    )
    for mid in (0.0, 2.5, 5.0):
        a = float(np.clip(0.5 - (snr_est - mid) / 10, 0.0, 1.0))
        out[f"dd_snr{mid:g}"] = inv(g.dd_gain(P, lam_nmf**a * lam_ms ** (1 - a)) * Y)
    for mid in (7.5, 10.0):
        a = float(np.clip(0.5 - (snr_est - mid) / 10, 0.0, 1.0))
        out[f"dd_snr{mid:g}"] = inv(g.dd_gain(P, lam_nmf**a * lam_ms ** (1 - a)) * Y)
    for mid, slope in ((5.0, 20.0), (7.5, 20.0)):
        a = float(np.clip(0.5 - (snr_est - mid) / slope, 0.0, 1.0))
        out[f"dd_snr{mid:g}s{slope:g}"] = inv(g.dd_gain(P, lam_nmf**a * lam_ms ** (1 - a)) * Y)
    out.update(model_grid(y, s, snr_est))
    out["_snr_est"] = np.array([snr_est])
    out["g_mean"] = inv(0.5 * (m + G_dd) * Y)
    out["g_max"] = inv(np.maximum(m, G_dd) * Y)
    out["g_geo"] = inv(np.sqrt(m * G_dd) * Y)
    return out


def model_grid(y: np.ndarray, s: np.ndarray, snr_est: float) -> dict[str, np.ndarray]:
    """The same rules on the built-in model's grid (128 ms frames, 32 ms hop), as the engine
    would run them on a block: tracker constants scaled to the hop."""
    import generalise as g

    from nmfsep.spectral import STFTConfig, istft, stft

    cfg = STFTConfig(n_fft=2048, hop_length=512)
    Y = stft(y.astype(np.float32)[np.newaxis], cfg)[0]
    S = stft(s.astype(np.float32)[np.newaxis], cfg)[0]
    P = np.abs(Y).astype(np.float64) ** 2
    N = Y - S
    out = {}
    r = cfg.hop_length / HOP
    lam_ms = g.min_stat_noise(P, alpha_s=0.85**r, frames=round(1.5 * SR / cfg.hop_length))
    lam_nmf = np.maximum(_smooth(np.abs(N).astype(np.float64) ** 2, 0.85**r), 1e-12)
    for ad in (0.98, 0.98**r):
        for mid in (5.0, 7.5):
            a = float(np.clip(0.5 - (snr_est - mid) / 10, 0.0, 1.0))
            G = g.dd_gain(P, lam_nmf**a * lam_ms ** (1 - a), alpha_dd=ad)
            x = np.asarray(istft((G * Y)[np.newaxis].astype(np.complex64), cfg, length=len(y)))
            out[f"m_dd{ad:.2f}_snr{mid:g}"] = x[0].astype(np.float64)
    return out


def main() -> None:
    import _generalise_methods as gm
    import generalise as g

    warnings.simplefilter("ignore")
    threadpool_limits(1)
    per = int(sys.argv[1]) if len(sys.argv) > 1 else 8
    recipe = gm.RECIPES[sys.argv[2] if len(sys.argv) > 2 else gm.SHIPPED]
    corpus = g.Corpus()
    folds = g.make_folds(corpus, 5, 0)
    mixtures = g.make_mixtures(corpus, folds, per, 5.0, 0)
    models = {f.index: g.fold_model(corpus, recipe, f, True) for f in folds}
    scores: dict[str, list[dict]] = {}
    dd = []
    t0 = time.process_time()
    for m in mixtures:
        s = recipe.separate(models[m.fold], m.mix.astype(np.float32)[np.newaxis])
        for k, est in rules(m.mix, s, g.dd_wiener(m.mix)).items():
            if k.startswith("_"):
                scores.setdefault(k, []).append({"sdri": float(est[0]), "si_sdri": 0, "stoi": 0})
                continue
            scores.setdefault(k, []).append(g.score(m.speech, est, m.mix))
        dd.append(scores["dd"][-1]["sdri"])
    snr = np.array([m.snr for m in mixtures])
    d = np.array(dd)
    for k, rows in scores.items():
        v = np.array([r["sdri"] for r in rows])
        by = {int(x): round(float(v[snr == x].mean()), 2) for x in sorted(set(snr))}
        print(
            f"{k:12s} SDRi {v.mean():5.2f} SI-SDRi {np.mean([r['si_sdri'] for r in rows]):5.2f} "
            f"STOI {np.mean([r['stoi'] for r in rows]):.3f} >DD {np.mean(v > d):.0%} "
            f"worst {v.min():.2f} by SNR {json.dumps(by)}",
            flush=True,
        )
    print(f"({time.process_time() - t0:.0f} CPU-s)")
    dump = {"ids": [m.ident for m in mixtures], "snr": snr.tolist(), "scores": scores}
    Path(os.environ.get("HYBRID_JSON", "/tmp/hybrid.json")).write_text(json.dumps(dump))


if __name__ == "__main__":
    main()
