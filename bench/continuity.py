"""Temporal continuity (issue 12, item 3): ``separate --continuity`` on the cases of methods.py.

    OMP_NUM_THREADS=1 .venv/bin/python bench/methods.py continuity [--values 0,0.1,1]
        [--source other] [--per-fold M] [--only dev,music,folds]
    OMP_NUM_THREADS=1 .venv/bin/python bench/continuity.py cost [--values 0,0.1,1]

``continuity`` runs trained separation (``train`` on the case's clips / the per-case 20 s of the
folds, defaults otherwise) with ``continuity`` = each value, on every basis or (``--source``) on
one source's bases; scores as in ``bench/methods.py``. ``cost`` times the activation solve of
``fit_masks`` (process CPU, one thread) on 60 s of a dev mixture with the built-in model and a
per-case model, with ``tol=0`` and a fixed number of iterations, per iteration.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))


def run_continuity(cases: list[dict], values: list[float], source: str | None) -> list[dict]:
    import methods

    from nmfsep.engine import Separator

    rows = []
    for c in cases:
        model = methods.trained_model(c)
        src = None if source is None else model.source_names[0 if source == "wanted" else 1]
        row: dict = {"case": c["name"], "group": c["group"]}
        for lam in values:
            t0 = time.process_time()
            sep = Separator(model, sr=c["sr"], continuity=lam, continuity_source=src)
            a = sep.process(c["mix"].astype(np.float32))
            b = sep.flush()
            cpu = time.process_time() - t0
            est = np.concatenate([a[model.source_names[0]], b[model.source_names[0]]])
            row[f"λ={lam:g}"] = {**methods.score(c["ref"], est, c["mix"], c["sr"]), "cpu_s": cpu}
        rows.append(row)
        line = "  ".join(
            f"{k} {v['sdri']:+.2f}/{v['stoi']:.3f} {v['cpu_s']:.2f}s"
            for k, v in row.items()
            if isinstance(v, dict)
        )
        print(f"{c['name'][:34]:34s} {line}", flush=True)
    return rows


def cost(values: list[float], n_iter: int, repeats: int) -> None:
    """CPU per activation iteration of the engine's solve, relative to continuity 0."""
    import methods

    from nmfsep.engine import SeparationPlan, fit_masks
    from nmfsep.model import default_model
    from nmfsep.options import SeparateOptions
    from nmfsep.spectral import stft_rows, windows

    case = next(c for c in methods.dev_cases() if c["group"] == "dev")
    mix = np.tile(case["mix"], int(np.ceil(60 * case["sr"] / case["mix"].size)))[: 60 * case["sr"]]
    for label, model in (("built-in", default_model()), ("per-case", methods.trained_model(case))):
        base = None
        for lam in values:
            opts = SeparateOptions(continuity=lam, max_iter=n_iter, tol=0.0)
            plan = SeparationPlan.create(model, sr=case["sr"], options=opts)
            window, _ = windows(plan.config)
            X = stft_rows(mix.astype(np.float32)[None], plan.config, window)
            V = np.abs(X).mean(axis=0).T.copy()
            best = np.inf
            for _ in range(repeats):
                t0 = time.process_time()
                fit_masks(plan, V, None)
                best = min(best, time.process_time() - t0)
            per = best / n_iter
            base = per if base is None else base
            print(
                f"{label:9s} λ={lam:<6g} {V.shape[1]} frames: {best:.3f} s for {n_iter} iterations"
                f" = {1000 * per:.2f} ms/iteration ({per / base:.2f}x λ=0)",
                flush=True,
            )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("what", choices=["cost"])
    p.add_argument("--values", default="0,0.1,1")
    p.add_argument("--iters", type=int, default=20)
    p.add_argument("--repeats", type=int, default=3)
    a = p.parse_args()
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        cost([float(x) for x in a.values.split(",")], a.iters, a.repeats)


if __name__ == "__main__":
    main()
