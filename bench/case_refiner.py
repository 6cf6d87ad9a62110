"""A refiner trained per case on the user's own training clips (issue 12; not adopted).

    OMP_NUM_THREADS=1 .venv/bin/python bench/case_refiner.py PER_FOLD '{"n_mix": 150,
        "hidden": [256], "weight": 0.5}'

For each of the first PER_FOLD test mixtures of every fold of ``bench/generalise.py``: the
per-case model (``generalise.per_case_model``), then a refiner (:mod:`nmfsep.refine`) trained on
``n_mix`` synthetic 3 s mixtures of that speaker's and that noise's *training* parts (the 20 s
the bases were learned on), separated by that model; the test mixture is then separated with it
at ``weight``, next to the supervised peer's cached score.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))


def main() -> None:
    import _generalise_methods as gm
    import generalise as g

    from nmfsep import refine
    from nmfsep.separation import separate

    per_fold = int(sys.argv[1]) if len(sys.argv) > 1 else 4
    cfg = json.loads(sys.argv[2]) if len(sys.argv) > 2 else {}
    n_mix = cfg.get("n_mix", 150)
    hidden = tuple(cfg.get("hidden", [256]))
    weight = cfg.get("weight", 0.5)
    corpus = g.Corpus()
    folds = g.make_folds(corpus, 5, 0)
    mixtures = g.make_mixtures(corpus, folds, 16, 5.0, 0)
    mixtures = [m for m in mixtures if int(m.ident.split("_")[1]) < per_fold]
    rows = []
    t0 = time.process_time()
    for m in mixtures:
        model = g.per_case_model(corpus, m, True)
        n = int(g.PER_CASE_TRAIN_SECONDS * g.SR)
        sp = {m.speaker: corpus.split(m.speaker)[0][:n]}
        no = {m.noise: corpus.split(m.noise)[0][:n]}
        t = time.process_time()
        F, Y = gm.refiner_data(model, {}, sp, no, n_mix=n_mix)
        r = refine.fit_refiner(F, Y, hidden=hidden, fmax=g.SR / 2)
        cost = time.process_time() - t
        y = m.mix.astype(np.float32)[np.newaxis]
        ref = g.peer_scores(corpus, m, True)
        est = separate(y, g.SR, dataclasses.replace(model, refiner=r), refine=weight)
        s = g.score(m.speech, est.sources["speech"][0], m.mix)
        row = {"id": m.ident, "sup": ref["supervised"], "ref": s, "oracle": ref["oracle"]}
        rows.append({**row, "cost": cost})
        print(
            f"{m.ident:60s} sup {ref['supervised']['sdri']:6.2f} ref {s['sdri']:6.2f} "
            f"stoi {ref['supervised']['stoi']:.3f}->{s['stoi']:.3f} ({cost:.0f} s)",
            flush=True,
        )
    for k in ("sdri", "si_sdri", "stoi"):
        a = np.mean([r["sup"][k] for r in rows])
        b = np.mean([r["ref"][k] for r in rows])
        o = np.mean([r["oracle"][k] for r in rows])
        print(f"{k}: supervised {a:.3f} refined {b:.3f} oracle {o:.3f}")
    cost = np.mean([r["cost"] for r in rows])
    print(f"mean refiner cost {cost:.1f} CPU s; total {time.process_time() - t0:.0f}")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    main()
