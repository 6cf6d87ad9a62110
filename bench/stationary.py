"""The stationary-noise expert's gate (``nmfsep.stationary``) on the held-out folds of
``generalise.py``.

Every fold mixture (5 s: one block) is separated by the recipe's cached fold model twice, with
the expert's weight forced to 0 and to 1 (the gate's statistic recorded); the expert's blend is
linear in the time domain, so the output at any weight ``a`` is ``(1 - a) y_0 + a y_1`` exactly,
and every gate ``(weight, full_db, width_db)`` of the grid is scored without separating again:
mean SDRi / SI-SDRi / STOI, the share of mixtures above all three peers of ``generalise.py``
(noisereduce both ways, DD-Wiener; their cached scores), and mixtures below 0 dB at SNR <= 5.
The gate is then chosen on four folds and scored on the fifth, for each fold in turn (the
cross-validated figures are the honest ones for a gate chosen on these mixtures):

    OMP_NUM_THREADS=1 .venv/bin/python bench/stationary.py [RECIPE] [PER_FOLD]

Needs ``../shared/corpus``, the fold models and the peers' scores (``generalise.py`` builds and
caches them).
"""

from __future__ import annotations

import itertools
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _generalise_methods as gm
import generalise as gen

WEIGHTS = (0.35, 0.5, 0.6, 0.7, 0.8, 1.0)
FULL_DB = (-2.0, -1.5, -1.0, -0.5, 0.0, 0.5, 1.0)
WIDTH_DB = (0.5, 1.0, 2.0, 3.0, 4.0)
PEERS = ("nr_stationary", "nr_nonstationary", "dd_wiener")


def main() -> None:
    import dataclasses

    from threadpoolctl import threadpool_limits

    import nmfsep.stationary as st

    recipe = gm.RECIPES[sys.argv[1] if len(sys.argv) > 1 else gm.SHIPPED]
    per_fold = int(sys.argv[2]) if len(sys.argv) > 2 else 16
    corpus = gen.Corpus()
    folds = gen.make_folds(corpus, 5, 0)
    mixtures = gen.make_mixtures(corpus, folds, per_fold, 5.0, 0)
    models = {f.index: gen.fold_model(corpus, recipe, f, True) for f in folds}
    variant = dataclasses.replace(recipe, sep={**recipe.sep, "stationary_blend": 1.0})
    forced = {"a": 0.0, "stat": None}
    real_weight = st.expert_weight

    def weight(stat_db, w, settings=None):
        forced["stat"] = stat_db
        return forced["a"] if stat_db is not None else 0.0

    st.expert_weight = weight
    rows = []
    with threadpool_limits(1):
        for m in mixtures:
            ys = []
            for a in (0.0, 1.0):
                forced["a"] = a
                est = variant.separate(models[m.fold], m.mix.astype(np.float32)[None])
                ys.append(np.asarray(est, float).reshape(-1)[: len(m.mix)])
            peers = gen.peer_scores(corpus, m, True)
            best_peer = max(peers[k]["sdri"] for k in PEERS)
            rows.append((m, forced["stat"], ys, best_peer))
    st.expert_weight = real_weight
    stats = np.array([np.nan if r[1] is None else r[1] for r in rows])
    fold = np.array([r[0].fold for r in rows])
    snr = np.array([r[0].snr for r in rows])
    peer = np.array([r[3] for r in rows])
    cache: dict[tuple[int, float], dict[str, float]] = {}

    def scores(i: int, a: float) -> dict[str, float]:
        key = (i, round(a, 3))
        if key not in cache:
            m, _, (y0, y1), _ = rows[i]
            cache[key] = gen.score(m.speech, (1 - a) * y0 + a * y1, m.mix)
        return cache[key]

    def run(gate: tuple[float, float, float], idx: np.ndarray) -> list[dict[str, float]]:
        w, full, width = gate
        s = st.ExpertSettings(full_db=full, width_db=width)
        # weights on a 0.05 grid: the cache then holds a few scores per mixture
        out = []
        for i in idx:
            a = real_weight(None if np.isnan(stats[i]) else float(stats[i]), w, s)
            out.append(scores(int(i), round(a * 20) / 20))
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
    print(f"{len(rows)} mixtures, recipe {recipe.name}")
    print("| gate (weight, full dB, width dB) | SDRi | SI-SDRi | STOI | above all peers |", end="")
    print(" < 0 at <= 5 dB |\n|---|---:|---:|---:|---:|---:|")

    def line(name: str, t: tuple[float, float, float, float, int]) -> None:
        print(f"| {name} | {t[0]:.2f} | {t[1]:.2f} | {t[2]:.3f} | {100 * t[3]:.0f} % | {t[4]} |")

    line("off", off)
    ranked = sorted(grid, key=lambda g: -objective(run(g, everyone), everyone))
    for g in ranked[:8]:
        line(f"{g}", summary(run(g, everyone), everyone))
    for g in [(0.7, -0.5, 3.0), (0.5, -0.5, 3.0), (0.7, 0.0, 2.0)]:
        line(f"{g} (fixed)", summary(run(g, everyone), everyone))
    cv: list[dict[str, float] | None] = [None] * len(rows)
    for f in sorted(set(fold)):
        train, test = np.flatnonzero(fold != f), np.flatnonzero(fold == f)
        best = max(grid, key=lambda g: objective(run(g, train), train))
        print(f"fold {f}: gate chosen on the other folds {best}")
        for i, x in zip(test, run(best, test), strict=True):
            cv[int(i)] = x
    line("chosen on 4 folds, scored on the 5th", summary([x for x in cv if x], everyone))
    print("statistic (dB) by noise, with the best weight on the 0.05 grid:")
    for i in np.argsort(-np.nan_to_num(stats, nan=-99)):
        a_best = max((a / 20 for a in range(21)), key=lambda a: scores(int(i), a)["sdri"])
        print(f"  {rows[i][0].ident:62s} {stats[i]:7.2f}  best a {a_best:.2f}")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    main()
