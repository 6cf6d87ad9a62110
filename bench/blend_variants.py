"""Settings of the cluster blend (``nmfsep.blend``) on the held-out folds of ``generalise.py``.

Each variant is a JSON object of ``cluster_blend`` (the weight ``w``), ``bands`` (ERB bands,
or a list of band counts: one factorisation each, their masks averaged; 0: every bin),
``iters``, ``p`` (the clustered estimate's Wiener power) and ``k`` (bases); the recipe's
cached fold models separate every fold mixture with it (``"sep": {...}``: other separation
options, e.g. ``{"refine": 0.6}``), scored as ``generalise.py`` scores the built-in path
(SDRi / SI-SDRi / STOI; by fold; by SNR with STOI):

    OMP_NUM_THREADS=1 .venv/bin/python bench/blend_variants.py nb_n64_free2n_tracked_bins7 16 \\
        '{"cluster_blend": 0}' '{"cluster_blend": 0.4, "bands": [128, 64, 32], "iters": 20}'

``"gate": [FULL_DB, WIDTH_DB]`` sets the stationary expert's gate (its weight is the
``stationary_blend`` of ``"sep"``). ``"per_frame": B`` is short for ``"sep": {"frame_balance":
B}`` (``true``: 1). Each line also gives the share of mixtures above all three peers of
``generalise.py`` (their cached scores) and the mixtures below 0 dB at SNR <= 5 (``LIST=1``
names them). ``FOLDS=0,1,2,4`` limits the folds. Needs ``../shared/corpus`` and the fold models
(built and cached by ``generalise.py`` when missing).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _generalise_methods as gm
import generalise as gen


def main() -> None:
    if len(sys.argv) < 4:
        raise SystemExit(__doc__)
    from threadpoolctl import threadpool_limits

    import nmfsep.blend
    import nmfsep.stationary
    from nmfsep import defaults

    recipe = gm.RECIPES[sys.argv[1]]
    per_fold = int(sys.argv[2])
    corpus = gen.Corpus()
    folds = gen.make_folds(corpus, 5, 0)
    if os.environ.get("FOLDS"):
        folds = [folds[int(i)] for i in os.environ["FOLDS"].split(",")]
    mixtures = gen.make_mixtures(corpus, folds, per_fold, 5.0, 0)
    models = {f.index: gen.fold_model(corpus, recipe, f, True) for f in folds}
    blend = nmfsep.blend.cluster_blend
    expert = nmfsep.stationary.stationary_expert
    peers = [
        max(gen.peer_scores(corpus, m, True)[k]["sdri"] for k in ("nr_stationary",
            "nr_nonstationary", "dd_wiener"))
        for m in mixtures
    ]  # fmt: skip
    bands_default = defaults.CLUSTER_BLEND_BANDS
    for spec in sys.argv[3:]:
        v = json.loads(spec)
        # a band count or a list of them; 0, every bin: as many bands as bins (analysis_bands
        # then keeps each bin)
        bands = v.get("bands", bands_default)
        bands = (bands,) if isinstance(bands, int) else tuple(bands)
        defaults.CLUSTER_BLEND_BANDS = tuple(n or 1 << 20 for n in bands)
        nmfsep.blend.cluster_blend = functools.partial(
            blend,
            max_iter=v.get("iters", defaults.CLUSTER_BLEND_ITER),
            mask_power=v.get("p", defaults.CLUSTER_BLEND_MASK_POWER),
            n_components=v.get("k", defaults.CLUSTER_BLEND_COMPONENTS),
        )
        gate = v.get("gate")  # the stationary expert's gate (full dB, width dB)
        nmfsep.stationary.stationary_expert = (
            functools.partial(expert, settings=nmfsep.stationary.ExpertSettings(
                full_db=float(gate[0]), width_db=float(gate[1])))
            if gate else expert
        )  # fmt: skip
        balance = {"frame_balance": float(v["per_frame"])} if "per_frame" in v else {}
        variant = dataclasses.replace(
            recipe,
            sep={
                **recipe.sep,
                "cluster_blend": v.get("cluster_blend", 0.4),
                **balance,
                **v.get("sep", {}),
            },
        )
        rows = []
        t0 = time.process_time()
        with threadpool_limits(1):
            for m in mixtures:
                est = variant.separate(models[m.fold], m.mix.astype(np.float32)[None])
                rows.append((m.fold, m.snr, gen.score(m.speech, est, m.mix)))
        cpu = time.process_time() - t0

        def mean(key: str, sub: list = rows) -> float:
            return float(np.mean([r[2][key] for r in sub]))

        sdri = [r[2]["sdri"] for r in rows]
        wins = float(np.mean([x > p for x, p in zip(sdri, peers, strict=True)]))
        negative = sum(x < 0 and r[1] <= 5 for x, r in zip(sdri, rows, strict=True))
        by_fold = " ".join(
            f"{mean('sdri', [r for r in rows if r[0] == f]):.2f}"
            for f in sorted({r[0] for r in rows})
        )
        by_snr = " ".join(
            f"{mean('sdri', s):.2f}/{mean('stoi', s):.3f}"
            for s in ([r for r in rows if r[1] == q] for q in gen.SNRS)
            if s
        )
        print(
            f"{spec:56s} {mean('sdri'):.2f} / {mean('si_sdri'):.2f} / {mean('stoi'):.3f} | "
            f"folds {by_fold} | snr {by_snr} | above all peers {100 * wins:.0f} % | "
            f"< 0 at <= 5 dB: {negative} | cpu {cpu:.0f} s (scoring included)",
            flush=True,
        )
        if os.environ.get("LIST"):
            for m, x, p in zip(mixtures, sdri, peers, strict=True):
                if x <= p or (x < 0 and m.snr <= 5):
                    print(f"    {m.ident:64s} {x:6.2f} (best peer {p:6.2f})")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    main()
