"""Issue 12, item 4: the harmonic/percussive prior on the trained path (``methods.py hpss``).

    OMP_NUM_THREADS=1 .venv/bin/python bench/methods.py hpss [--strengths 1,2,3] [--speech]

Cases: the dev music case (guitar vs drums, ``../shared/data``) and the four corpus
percussion-vs-pitched mixes of ``methods.music_cases`` (bongo/guitar = the "tabla vs guitar"
case, timpani/cello, drum kit/piano, jungle break/latin guitar); ``--speech`` adds the three dev
speech cases. Per case one model is trained on the sources' clips as ``nmfsep train --hpss-prior``
does (the bases are the plain ones; the shares are metadata), then compared:

* **plain**: ``separate`` defaults (``hpss_prior=0``);
* **prior S**: the mask prior of :mod:`nmfsep.hpss` at strength S (candidate b);
* **features**: candidate (a), HPSS-informed features, implemented here only: the bases learn
  each source's harmonic and percussive parts stacked (librosa HPSS soft masks, margin 1, so the
  parts sum to the magnitude), the activations are fitted on the mixture's stacked parts, and
  the masks come from the sum of the halves (every bin; 2x the rows of plain NMF);
* **librosa_hpss**: librosa ``effects.hpss`` margin 3 alone, the harmonic part as the pitched
  source; **oracle**: the Wiener mask of the true sources at nmfsep's STFT.

Scores of the wanted source (the pitched instrument; speech): SDRi, SI-SDRi, STOI; CPU seconds
of each separation (one thread) and of the training.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import methods as M
import numpy as np


def train(c: dict, **options):
    from nmfsep.separation import train_model

    wanted, other = c["train"]
    if isinstance(wanted, Path):
        wanted, other = M._read(wanted)[0], M._read(other)[0]
    return train_model(
        {"wanted": [wanted[None].astype(np.float32)], "other": [other[None].astype(np.float32)]},
        sr=c["sr"],
        random_state=0,
        **options,
    )


def separate_wanted(model, c: dict, **options) -> tuple[np.ndarray, float]:
    from nmfsep.engine import Separator

    t0 = time.process_time()
    sep = Separator(model, sr=c["sr"], **options)
    a = sep.process(c["mix"].astype(np.float32))
    b = sep.flush()
    name = model.source_names[0]
    return np.concatenate([a[name], b[name]]), time.process_time() - t0


def _stacked_hp(S: np.ndarray) -> np.ndarray:
    """The magnitude's harmonic and percussive parts (librosa HPSS soft masks, margin 1, so
    they sum to S) stacked: (2 * n_freq, n_frames)."""
    import librosa

    Mh, Mp = librosa.decompose.hpss(S.astype(np.float64), margin=1.0, mask=True)
    return np.vstack([S * Mh, S * Mp]).astype(np.float32)


def features_wanted(c: dict) -> tuple[np.ndarray, float, float]:
    """Candidate (a): bases learned as ``train`` does (32 per source, 5-frame context, KL, 200
    iterations, audible frames) on the stacked harmonic/percussive parts; the mixture's
    stacked parts (each frame at unit mean) fitted with all bases fixed (L1 2, 20 iterations,
    every bin); Wiener masks (p = 2) from the sum of each source's two halves.

    Returns the wanted source, the training CPU and the separation CPU (s)."""
    from nmfsep.engine import default_stft
    from nmfsep.frames import stack_frames, unstack_frames
    from nmfsep.masks import wiener_masks
    from nmfsep.nmf import fit_nmf
    from nmfsep.spectral import istft, stft

    t0 = time.process_time()
    wanted, other = c["train"]
    if isinstance(wanted, Path):
        wanted, other = M._read(wanted)[0], M._read(other)[0]
    config, ctx, k = default_stft(c["sr"]), 5, 32
    rng = np.random.default_rng(0)
    Ws = []
    for y in (wanted, other):
        S = np.abs(stft(y[None].astype(np.float32), config)).mean(axis=0)
        e = S.sum(axis=0)
        audible = np.flatnonzero(e > e.max() * 1e-3)  # SILENCE_DB = 60
        V = stack_frames(_stacked_hp(S), ctx, audible)
        res = fit_nmf(V / V.mean(), n_components=k, beta=1.0, max_iter=200, tol=1e-4,
                      random_state=int(rng.integers(2**31)))  # fmt: skip
        Ws.append(res.W)
    t_train = time.process_time() - t0
    t0 = time.process_time()
    X = stft(c["mix"][None].astype(np.float32), config)
    V = np.abs(X).mean(axis=0)
    m = V.mean(axis=0, keepdims=True)
    W = np.concatenate(Ws, axis=1)
    res = fit_nmf(stack_frames(_stacked_hp(V / np.where(m > 0, m, 1)), ctx), W=W, fixed_W=True,
                  beta=1.0, l1_H=2.0, max_iter=20, tol=1e-4, random_state=0)  # fmt: skip
    F = V.shape[0]
    parts = [
        unstack_frames(W[:, j : j + k] @ res.H[j : j + k], ctx).reshape(2, F, -1).sum(axis=0)
        for j in (0, k)
    ]
    masks = wiener_masks(np.stack(parts), power=2.0)
    est = istft(masks[0][None] * X, config, length=len(c["mix"]))[0]
    return est, t_train, time.process_time() - t0


def oracle_wanted(c: dict) -> np.ndarray:
    from nmfsep.engine import default_stft
    from nmfsep.metrics import oracle_wiener_estimates

    n = min(len(c["ref"]), len(c["other"]))
    refs = np.stack([c["ref"][:n], c["other"][:n]])
    return oracle_wiener_estimates(refs, config=default_stft(c["sr"]))[0]


def run(cases: list[dict], strengths: list[float], *, features: bool) -> list[dict]:
    rows = []
    for c in cases:
        t0 = time.process_time()
        model = train(c, hpss_prior=1.0)  # the strength is only the model's recommendation
        t_train = time.process_time() - t0
        shares = list(model.metadata["hpss_prior"]["percussive_share"].values())
        row: dict = {"case": c["name"], "group": c["group"], "shares": shares,
                     "train_cpu_s": t_train}  # fmt: skip
        est, cpu = separate_wanted(model, c, hpss_prior=0.0)
        row["plain"] = {**M.score(c["ref"], est, c["mix"], c["sr"]), "cpu_s": cpu}
        for s in strengths:
            est, cpu = separate_wanted(model, c, hpss_prior=s)
            row[f"prior {s:g}"] = {**M.score(c["ref"], est, c["mix"], c["sr"]), "cpu_s": cpu}
        if features:
            est, t_tr, cpu = features_wanted(c)
            row["features"] = {**M.score(c["ref"], est, c["mix"], c["sr"]), "cpu_s": cpu,
                               "train_cpu_s": t_tr}  # fmt: skip
        if c["group"] == "music":
            t1 = time.process_time()
            est = M.hpss_harmonic(c["mix"])
            row["librosa_hpss"] = {**M.score(c["ref"], est, c["mix"], c["sr"]),
                                   "cpu_s": time.process_time() - t1}  # fmt: skip
        row["oracle"] = M.score(c["ref"], oracle_wanted(c), c["mix"], c["sr"])
        rows.append(row)
        sh = "/".join(f"{v:.2f}" for v in shares)
        line = "  ".join(
            f"{k} {v['sdri']:+.2f}/{v['si_sdri']:+.2f}/{v['stoi']:.3f}"
            + (f" {v['cpu_s']:.2f}s" if "cpu_s" in v else "")
            for k, v in row.items()
            if isinstance(v, dict) and "sdri" in v
        )
        print(f"{c['name'][:14]:14s} shares {sh} train {t_train:.1f}s  {line}", flush=True)
    return rows


def summarise(rows: list[dict]) -> None:
    """Markdown tables: per group, each method's mean SDRi / SI-SDRi / STOI and CPU."""
    for group, title in (("music", "music"), ("dev", "dev speech")):
        rs = [r for r in rows if r["group"] == group]
        if not rs:
            continue
        methods = [k for k, v in rs[0].items() if isinstance(v, dict)]
        print(f"\n{title} ({len(rs)} cases): SDRi / SI-SDRi (dB) / STOI, separation CPU (s)\n")
        print("| case | shares (wanted/other) | " + " | ".join(methods) + " |")
        print("|---|---|" + "---:|" * len(methods))
        for r in rs:
            cells = [
                f"{r[m]['sdri']:+.2f} / {r[m]['si_sdri']:+.2f} / {r[m]['stoi']:.3f}"
                for m in methods
            ]
            sh = "/".join(f"{v:.2f}" for v in r["shares"])
            print(f"| {r['case']} | {sh} | " + " | ".join(cells) + " |")
        means = []
        for m in methods:
            v = {k: np.mean([r[m][k] for r in rs]) for k in ("sdri", "si_sdri", "stoi")}
            means.append(f"**{v['sdri']:+.2f}** / {v['si_sdri']:+.2f} / {v['stoi']:.3f}")
        print("| **mean** | | " + " | ".join(means) + " |")
        cpu = [
            f"{np.mean([r[m]['cpu_s'] for r in rs]):.3f}" if "cpu_s" in rs[0][m] else "–"
            for m in methods
        ]
        print("| CPU s per case | | " + " | ".join(cpu) + " |")
        train_cpu = np.mean([r["train_cpu_s"] for r in rs])
        print(f"\ntraining (plain bases + shares): {train_cpu:.2f} s CPU per case")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="methods.py hpss", description=__doc__.splitlines()[0])
    p.add_argument("--strengths", default="1,2,3")
    p.add_argument("--speech", action="store_true", help="also the three dev speech cases")
    p.add_argument("--no-features", action="store_true", help="skip candidate (a)")
    p.add_argument("--no-music", action="store_true", help="only the speech cases")
    p.add_argument("--json", type=Path, default=None)
    a = p.parse_args(argv)
    cases = [] if a.no_music else [c for c in M.dev_cases() if c["group"] == "music"]
    cases += [] if a.no_music else M.music_cases()
    if a.speech:
        cases += [c for c in M.dev_cases() if c["group"] == "dev" and c["name"] != "sample"]
    t0 = time.perf_counter()
    rows = run(cases, [float(x) for x in a.strengths.split(",")], features=not a.no_features)
    if a.json:
        a.json.write_text(json.dumps(rows, indent=1))
    summarise(rows)
    print(f"\n{time.perf_counter() - t0:.0f} s wall")


if __name__ == "__main__":
    main()
