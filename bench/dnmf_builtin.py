"""Discriminative reconstruction bases for the built-in model (issue 12 item 1 on issue 11's
folds), separated with the shipped settings:
2 free noise bases learned per mixture, every bin, 7 iterations, p = 1, tracked gain).

Per fold: the fold's shipped-recipe model (cache), synthetic mixtures of the fold's training
speakers and noises (no babble/music, like the recipe), each inferred by the engine's own
fit_masks (H of the fixed bases and the free part per mixture); then MU on the reconstruction
bases R of the fixed bases on sum_i KL(S_i | M_i V), the free part held in the noise's lambda.
Scored on the fold's test mixtures through the library's separate (tracked gain) with R,
next to the shipped path's scores of the same mixtures from a ``generalise.py --json`` run.

    OMP_NUM_THREADS=1 [DBETA=1|2] .venv/bin/python bench/dnmf_builtin.py \
        N_MIX SEGMENT_FRAMES N_ITER all|speech SNR_LO,SNR_HI FOLDS OUT.json BASE.json

e.g. ``80 156 30 speech -5,10 0,1 /tmp/dnmf.json /tmp/gen/base.json`` (results in
bench/README.md, "Discriminative training").
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _generalise_methods as gm
import generalise as G
from discriminative import _with_recon

from nmfsep.engine import SeparationPlan, fit_masks
from nmfsep.frames import unstack_frames
from nmfsep.model import NMFModel
from nmfsep.options import SeparateOptions
from nmfsep.training import _fit_recon, _synthetic_mixtures

N_MIX = int(sys.argv[1]) if len(sys.argv) > 1 else 40
SEG = int(sys.argv[2]) if len(sys.argv) > 2 else 156
N_ITER = int(sys.argv[3]) if len(sys.argv) > 3 else 40
TARGETS = sys.argv[4] if len(sys.argv) > 4 else "all"
SNR = tuple(float(x) for x in (sys.argv[5] if len(sys.argv) > 5 else "-5,10").split(","))
FOLDS = [int(x) for x in (sys.argv[6] if len(sys.argv) > 6 else "0,1,2,3,4").split(",")]
BETA = float(os.environ.get("DBETA", "1"))
OUT = sys.argv[7] if len(sys.argv) > 7 else "/tmp/dnmf.json"
BASE = sys.argv[8] if len(sys.argv) > 8 else "/tmp/gen/base.json"

recipe = gm.RECIPES[gm.SHIPPED]
OPTS = SeparateOptions(
    free_components=2, free_source="noise", mask_power=1.0, analysis_bands=0, max_iter=7
)


def learn_R(model: NMFModel, clips: list[list[np.ndarray]], seed: int) -> tuple[dict, dict]:
    t0 = time.process_time()
    rng = np.random.default_rng(seed)
    plan = SeparationPlan.create(model, sr=model.sr, options=OPTS)
    c = plan.context
    n_fixed = plan.W.shape[1]
    labels = plan.labels
    Vs, Ss, Hs, Fs = [], [], [], []
    for _g in range(N_MIX):
        V, S, _ = _synthetic_mixtures(
            clips, model.stft, n_frames=SEG, segment=SEG, snr_range=SNR, rng=rng
        )
        # _synthetic_mixtures makes >= 2 mixtures; keep the first
        T = V.shape[1] // 2
        V, S = V[:, :T], S[:, :, :T]
        _, res = fit_masks(plan, V, None)
        s = 1.0 / max(float(V.mean()), 1e-12)  # fit_masks' own block unit mean
        H = res.H[:n_fixed]
        free = unstack_frames(res.W[:, n_fixed:] @ res.H[n_fixed:], c)
        Vs.append(V * s)
        Ss.append(S * s)
        Hs.append(H)
        Fs.append(free)
    V = np.concatenate(Vs, 1)
    S = np.concatenate(Ss, 2)
    H = np.ascontiguousarray(np.concatenate(Hs, 1), dtype=np.float32)
    free = np.concatenate(Fs, 1)
    group = np.concatenate([np.full(v.shape[1], i) for i, v in enumerate(Vs)])
    held = group >= N_MIX - N_MIX // 5
    names = plan.names
    cols_of = [labels[:n_fixed] == i for i in range(len(names))]
    extra = np.zeros((len(names), *free.shape), dtype=np.float32)
    extra[names.index("noise")] = free  # each mixture's free part stays in the noise's lambda
    wanted = list(range(len(names))) if TARGETS == "all" else [0]
    best_R, (first, best, _, best_it, n_done) = _fit_recon(
        V, S, H, plan.W, cols_of, context=c, power=1.0, beta=BETA, wanted=wanted, held=held,
        n_iter=N_ITER, extra=extra,
    )  # fmt: skip
    recon = {
        n: np.ascontiguousarray(best_R[:, k], dtype=np.float32)
        for n, k in zip(names, cols_of, strict=True)
    }
    info = {
        "held": [first, best],
        "best_it": best_it,
        "iters": n_done,
        "cpu": time.process_time() - t0,
    }
    return recon, info


def main() -> None:
    corpus = G.Corpus()
    folds = G.make_folds(corpus, 5, 0)
    mixtures = G.make_mixtures(corpus, folds, 16, 5.0, 0)
    base = {r["id"]: r for r in json.load(open(BASE))["rows"]}
    rows = []
    for fold in folds:
        if fold.index not in FOLDS:
            continue
        model = G.fold_model(corpus, recipe, fold, True)
        clips = [
            [corpus.audio(k) for k in fold.train_speakers],
            [
                corpus.audio(k)
                for k in fold.train_noises
                if corpus.noise[k]["category"].split("/")[0] not in ("babble", "music")
            ],
        ]
        recon, info = learn_R(model, clips, seed=fold.index)
        print(f"fold {fold.index}: {info}", flush=True)
        dm = _with_recon(model, recon)  # the recipe passes its settings explicitly
        for m in (x for x in mixtures if x.fold == fold.index):
            est = recipe.separate(dm, m.mix.astype(np.float32)[np.newaxis])
            r = {
                "id": m.ident,
                "fold": m.fold,
                "snr": int(m.snr),
                "disc": G.score(m.speech, est, m.mix),
                "builtin": base[m.ident]["builtin"],
                "dd": base[m.ident]["dd_wiener"],
            }
            rows.append(r)
        sub = [r for r in rows if r["fold"] == fold.index]
        for key in ("builtin", "disc"):
            print(
                f"  {key}: "
                + " / ".join(
                    f"{np.mean([r[key][k] for r in sub]):.2f}" for k in ("sdri", "si_sdri", "stoi")
                ),
                flush=True,
            )
    for key in ("builtin", "disc"):
        print(
            f"ALL {key}: "
            + " / ".join(
                f"{np.mean([r[key][k] for r in rows]):.3f}" for k in ("sdri", "si_sdri", "stoi")
            )
        )
    for snr in (-5, 0, 5, 10):
        sub = [r for r in rows if r["snr"] == snr]
        print(
            snr,
            " ".join(f"{np.mean([r[k]['sdri'] for r in sub]):.2f}" for k in ("builtin", "disc")),
        )
    print(
        "> DD",
        np.mean([r["disc"]["sdri"] > r["dd"]["sdri"] for r in rows]),
        "neg<=5",
        sum(r["disc"]["sdri"] < 0 for r in rows if r["snr"] <= 5),
    )
    json.dump(rows, open(OUT, "w"))


if __name__ == "__main__":
    main()
