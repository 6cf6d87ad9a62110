"""The stationary-noise expert's gate (``nmfsep.stationary``) on the held-out folds of
``generalise.py``.

Every fold mixture (5 s: one block) is separated once by the recipe's cached fold model with the
expert's inputs captured (the block's mixture, what the separation removed, the gate's samples)
and the expert kept out; the expert is linear in the time domain, so the output of any gate
``(weight, full_db, width_db)`` is ``(1 - a) y + a e_g`` exactly, ``e_g`` the expert's estimate
with the gate open by ``g`` (computed on a 0.05 grid of ``g`` and ``a``, cached), and every gate
of the grid is scored without separating again: mean SDRi / SI-SDRi / STOI, the share of
mixtures above all three peers of ``generalise.py`` (noisereduce both ways, DD-Wiener; their
cached scores), and mixtures below 0 dB at SNR <= 5. The gate is then chosen on four folds and
scored on the fifth, for each fold in turn (the cross-validated figures are the honest ones for
a gate chosen on these mixtures); ``--floor-only`` scores the expert with the tracker's floor
as its noise PSD at every ``g`` (the first form):

    OMP_NUM_THREADS=1 .venv/bin/python bench/stationary.py [RECIPE] [PER_FOLD] [--floor-only] \\
        [--sep '{"frame_balance": 1, "l1": 0.5}']

``--sep JSON``: other separation options of the recipe's built-in path.

``--supervised`` instead scores the per-case trained peer (``generalise.per_case_model``) with
``stationary_blend`` 0, 0.3, 0.5 and 0.7 through the library (the gate at its defaults).

Needs ``../shared/corpus``, the fold models and the peers' scores (``generalise.py`` builds and
caches them).
"""

from __future__ import annotations

import itertools
import json
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _generalise_methods as gm
import generalise as gen

WEIGHTS = (0.5, 0.6, 0.7, 0.8)
FULL_DB = (-0.5, 0.0, 0.5, 1.0)
WIDTH_DB = (3.0, 4.0, 5.0)
PEERS = ("nr_stationary", "nr_nonstationary", "dd_wiener")


def main() -> None:
    import dataclasses

    from threadpoolctl import threadpool_limits

    import nmfsep.stationary as st

    if "--supervised" in sys.argv:
        supervised()
        return
    argv = sys.argv[1:]
    extra: dict[str, Any] = {}
    if "--sep" in argv:
        i = argv.index("--sep")
        extra = json.loads(argv[i + 1])
        argv = argv[:i] + argv[i + 2 :]
    args = [a for a in argv if not a.startswith("--")]
    floor_only = "--floor-only" in argv
    recipe = gm.RECIPES[args[0] if args else gm.SHIPPED]
    per_fold = int(args[1]) if len(args) > 1 else 16
    corpus = gen.Corpus()
    folds = gen.make_folds(corpus, 5, 0)
    mixtures = gen.make_mixtures(corpus, folds, per_fold, 5.0, 0)
    models = {f.index: gen.fold_model(corpus, recipe, f, True) for f in folds}
    variant = dataclasses.replace(recipe, sep={**recipe.sep, **extra, "stationary_blend": 1.0})
    real = st.stationary_expert
    seen: dict[str, Any] = {}

    def capture(x, removed, *, sr, weight, core=None, settings=None):
        seen.update(x=x.copy(), removed=removed.copy(), core=core)
        return None, 0.0, None

    st.stationary_expert = capture
    rows = []
    with threadpool_limits(1):
        for m in mixtures:
            est = variant.separate(models[m.fold], m.mix.astype(np.float32)[None])
            y = np.asarray(est, float).reshape(-1)[: len(m.mix)]
            peers = gen.peer_scores(corpus, m, True)
            rows.append((m, dict(seen), y, max(peers[k]["sdri"] for k in PEERS)))
    st.stationary_expert = real
    # the captured block starts at padded position 0: the model's n_fft // 2 before the file
    pad = int(models[folds[0].index].stft.n_fft) // 2
    s0 = st.ExpertSettings()
    config, window, _ = st._frames(gen.SR, s0.frame_seconds)
    parts = []  # per mixture: the expert's STFT pieces and the gate's statistic
    for _, cap, _, _ in rows:
        X, P = st._periodogram(cap["x"], config, window)
        _, R = st._periodogram(cap["removed"], config, window)
        floor = st._noise_psd(P, config.hop_length / gen.SR, s0)
        _, _, stat = real(cap["x"], cap["removed"], sr=gen.SR, weight=1.0, core=cap["core"])
        parts.append((X, P, R, floor, stat))
    fold = np.array([r[0].fold for r in rows])
    snr = np.array([r[0].snr for r in rows])
    peer = np.array([r[3] for r in rows])
    estimates: dict[tuple[int, float], np.ndarray] = {}
    cache: dict[tuple[int, float, float], dict[str, float]] = {}

    def scores(i: int, a: float, g: float) -> dict[str, float]:
        key = (i, a, g)
        if key not in cache:
            m, cap, y, _ = rows[i]
            if a == 0.0:
                out = y
            else:
                if (i, g) not in estimates:
                    X, P, R, floor, _ = parts[i]
                    e = st._estimate(X, P, R, floor, 1.0 if floor_only else g, gen.SR, s0,
                                     cap["x"].shape[1])  # fmt: skip
                    estimates[(i, g)] = np.asarray(e, float).reshape(-1)[pad : pad + len(m.mix)]
                out = (1 - a) * y + a * estimates[(i, g)]
            cache[key] = gen.score(m.speech, out, m.mix)
        return cache[key]

    def run(gate: tuple[float, float, float], idx: np.ndarray) -> list[dict[str, float]]:
        w, full, width = gate
        s = st.ExpertSettings(full_db=full, width_db=width)
        out = []
        for i in idx:
            g = round(st.expert_weight(parts[i][4], 1.0, s) * 20) / 20
            out.append(scores(int(i), round(w * g * 20) / 20, g))
        return out

    def summary(sc: list[dict[str, float]], idx: np.ndarray) -> tuple:
        sdri = np.array([x["sdri"] for x in sc])
        return (
            float(sdri.mean()),
            float(np.mean([x["si_sdri"] for x in sc])),
            float(np.mean([x["stoi"] for x in sc])),
            float((sdri > peer[idx]).mean()),
            int(((sdri < 0) & (snr[idx] <= 5)).sum()),
        )

    def objective(sc, idx) -> float:
        # the two targets together: the share above every peer, then the mean SDRi
        mean, _, _, wins, neg = summary(sc, idx)
        return wins + 0.05 * mean - 0.05 * neg

    everyone = np.arange(len(rows))
    grid = list(itertools.product(WEIGHTS, FULL_DB, WIDTH_DB))
    off = summary(run((0.0, 0.0, 1.0), everyone), everyone)
    print(f"{len(rows)} mixtures, recipe {recipe.name}" + (", floor only" if floor_only else ""))
    print("| gate (weight, full dB, width dB) | SDRi | SI-SDRi | STOI | above all peers |", end="")
    print(" < 0 at <= 5 dB |\n|---|---:|---:|---:|---:|---:|")

    def line(name: str, t: tuple) -> None:
        print(f"| {name} | {t[0]:.2f} | {t[1]:.2f} | {t[2]:.3f} | {100 * t[3]:.0f} % | {t[4]} |")

    line("off", off)
    ranked = sorted(grid, key=lambda g: -objective(run(g, everyone), everyone))
    for g in ranked[:8]:
        line(f"{g}", summary(run(g, everyone), everyone))
    for g in [(0.7, 0.5, 4.0), (0.5, 0.5, 4.0), (0.7, -0.5, 3.0)]:
        line(f"{g} (fixed)", summary(run(g, everyone), everyone))
    cv: list[dict[str, float] | None] = [None] * len(rows)
    for f in sorted(set(fold)):
        train, test = np.flatnonzero(fold != f), np.flatnonzero(fold == f)
        best = max(grid, key=lambda g: objective(run(g, train), train))
        print(f"fold {f}: gate chosen on the other folds {best}")
        for i, x in zip(test, run(best, test), strict=True):
            cv[int(i)] = x
    line("chosen on 4 folds, scored on the 5th", summary([x for x in cv if x], everyone))
    print("statistic (dB) by mixture:")
    for i in np.argsort([-(p[4] if p[4] is not None else -99) for p in parts]):
        print(f"  {rows[i][0].ident:62s} {parts[i][4]:7.2f}")


def supervised() -> None:
    """The expert with per-case trained models (the supervised peer of ``generalise.py``)."""
    from threadpoolctl import threadpool_limits

    from nmfsep.separation import separate

    corpus = gen.Corpus()
    mixtures = gen.make_mixtures(corpus, gen.make_folds(corpus, 5, 0), 16, 5.0, 0)
    weights = (0.0, 0.3, 0.5, 0.7)
    rows = []
    with threadpool_limits(1):
        for m in mixtures:
            model = gen.per_case_model(corpus, m, True)
            y = m.mix.astype(np.float32)[None]
            rows.append(
                [
                    gen.score(
                        m.speech,
                        separate(y, gen.SR, model, stationary_blend=w).sources["speech"][0],
                        m.mix,
                    )
                    for w in weights
                ]
            )
    print(f"{len(rows)} mixtures, per-case trained models: stationary_blend, SDRi / SI-SDRi / STOI")
    for j, w in enumerate(weights):
        means = [np.mean([r[j][k] for r in rows]) for k in ("sdri", "si_sdri", "stoi")]
        print(f"  {w:g}: {means[0]:.2f} / {means[1]:.2f} / {means[2]:.3f}")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    main()
