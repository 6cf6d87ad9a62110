"""Sweep the built-in path's separation settings on the held-out folds of bench/generalise.py.

    OMP_NUM_THREADS=1 .venv/bin/python bench/generalise_sweep.py PER_FOLD 'JSON_LIST' [RECIPE]

A configuration may carry ``"_tracker": {...}``: the settings of ``gain="tracked"``
(:class:`nmfsep.tracking.TrackerSettings` fields).

E.g. ``bench/generalise_sweep.py 8 '[{"free_components": 2, "mask_power": 1.0,
"free_source": "noise"}, {"free_components": 2, "mask_power": 1.0, "analysis_bands": 0}]'``.

Uses the fold models and peer scores cached by ``bench/generalise.py`` (run it first), the fold
models of RECIPE (default: the shipped one), and prints per setting: mean SDRi, STOI, the
share of mixtures above DD-Wiener, the worst mixture and the mean by SNR.
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


def main() -> None:
    import _generalise_methods as gm
    import generalise as g

    warnings.simplefilter("ignore")
    threadpool_limits(1)
    per = int(sys.argv[1]) if len(sys.argv) > 1 else 8
    configs = json.loads(sys.argv[2]) if len(sys.argv) > 2 else [gm.RECIPES[gm.SHIPPED].sep]
    corpus = g.Corpus()
    folds = g.make_folds(corpus, 5, 0)
    mixtures = g.make_mixtures(corpus, folds, per, 5.0, 0)
    recipe_name = sys.argv[3] if len(sys.argv) > 3 else gm.SHIPPED
    base = gm.RECIPES[recipe_name]
    models = {f.index: g.fold_model(corpus, base, f, True) for f in folds}
    import nmfsep.tracking as tracking

    settings_class = tracking.TrackerSettings
    for sep in configs:
        # "_tracker": {...} sets the tracked gain's TrackerSettings for this configuration
        tracker = sep.pop("_tracker", {})
        tracking.TrackerSettings = lambda t=tracker: settings_class(**t)  # type: ignore[misc]
        recipe = gm.Generic("sweep", sep=sep)
        sep = {**sep, **({"_tracker": tracker} if tracker else {})}
        sdri, si, stoi, dd = [], [], [], []
        t0 = time.process_time()
        for m in mixtures:
            est = recipe.separate(models[m.fold], m.mix.astype(np.float32)[np.newaxis])
            s = g.score(m.speech, est, m.mix)
            sdri.append(s["sdri"])
            si.append(s["si_sdri"])
            stoi.append(s["stoi"])
            dd.append(g.peer_scores(corpus, m, True)["dd_wiener"]["sdri"])
        v, d = np.array(sdri), np.array(dd)
        snr = np.array([m.snr for m in mixtures])
        by_snr = {int(k): round(float(v[snr == k].mean()), 2) for k in sorted(set(snr))}
        print(
            json.dumps(sep),
            f"SDRi {v.mean():.2f} SI-SDRi {np.mean(si):.2f} STOI {np.mean(stoi):.3f} "
            f">DD {np.mean(v > d):.0%} "
            f"worst {v.min():.2f} by SNR {by_snr} ({time.process_time() - t0:.0f} CPU-s)",
            flush=True,
        )


if __name__ == "__main__":
    main()
