"""A learned mask refiner for the per-case trained path (issue 12), measured on the folds.

For every fold: per-case models (``generalise.per_case_model``: 32 bases per recording, learned
on the first 20 s of its training part) for all the fold's *training* speakers and noises;
``--mixtures`` synthetic 3 s mixtures of the *test parts* of those recordings (so the masks the
refiner learns from are out of sample, as a user's are), each separated by its own pair of
per-case models with the library's defaults; a refiner (:mod:`nmfsep.refine`) trained on their
band masks. Then the fold's test mixtures (unseen speakers x unseen noises, the per-case models
of the test recordings) are separated with it at weights ``--weights``, next to the supervised
peer's cached score (weight 0). One BLAS thread::

    OMP_NUM_THREADS=1 .venv/bin/python bench/supervised_refiner.py --only-folds 0,1

``--exemplars N``: the same with per-case models that carry N exemplar bases per source
(``train --exemplars N``), separated with the settings they recommend.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))


def pair_models(g, corpus, bases: dict[str, np.ndarray], like: str, exemplars: int = 0):
    """``model_for(speaker, noise)``: the two recordings' per-case bases side by side (the STFT
    and settings of recording ``like``'s cached model), as ``generalise.per_case_model``."""
    from nmfsep.model import NMFModel

    ref = g.recording_model(corpus, like, True, exemplars)

    def model_for(spk: str, noi: str):
        return NMFModel(
            bases={"speech": bases[spk], "noise": bases[noi]},
            sr=g.SR,
            stft=ref.stft,
            beta=ref.beta,
            context=ref.context,
            metadata={"separation": dict(ref.metadata.get("separation", {}))},
        )

    return model_for


def fold_refiner(
    g,
    gm,
    corpus,
    fold,
    n_mix: int,
    hidden: tuple[int, ...],
    exemplars: int = 0,
    context: int | None = None,
):
    from nmfsep import refine

    context = refine.CONTEXT if context is None else context
    name = f"{fold.key()}_{n_mix}_{'x'.join(map(str, hidden))}"
    if context != refine.CONTEXT:
        name += f"_c{context}"
    path = g.CACHE / "sup_refiner" / (f"{name}_ex{exemplars}.npz" if exemplars else f"{name}.npz")
    if path.is_file():
        with np.load(path) as z:
            meta = json.loads(str(z["meta"]))
            return refine.Refiner.from_arrays(meta, {k: z[k] for k in z.files if k != "meta"})
    recordings = fold.train_speakers + fold.train_noises
    bases = {k: g.recording_bases(corpus, k, True, exemplars) for k in recordings}
    model_for = pair_models(g, corpus, bases, fold.train_speakers[0], exemplars)
    speech = {k: corpus.split(k)[1] for k in fold.train_speakers}
    noise = {k: corpus.split(k)[1] for k in fold.train_noises}
    F, Y = gm.refiner_data(
        model_for, {}, speech, noise, n_mix=n_mix, seed=fold.index, context=context
    )
    r = refine.fit_refiner(F, Y, hidden=hidden, fmax=g.SR / 2, context=context)
    meta, arrays = r.to_arrays()
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, meta=json.dumps(meta), **arrays)
    return r


def print_shares(rows: list[dict], cols: list[str], folds: list[int]) -> None:
    """Mean SDRi / SI-SDRi / STOI of each column, its share of the oracle's SDRi, by fold."""
    print(f"\n{len(rows)} mixtures; SDRi / SI-SDRi / STOI")
    for c in cols:
        v = [np.mean([r[c][k] for r in rows]) for k in ("sdri", "si_sdri", "stoi")]
        share = v[0] / np.mean([r["oracle"]["sdri"] for r in rows])
        by_fold = " ".join(
            f"{np.mean([r[c]['sdri'] for r in rows if r['fold'] == f]):.2f}" for f in folds
        )
        print(
            f"{c:11s} {v[0]:6.2f} / {v[1]:6.2f} / {v[2]:.3f}  {100 * share:4.1f} % of oracle;"
            f" folds {by_fold}"
        )


def main() -> None:
    import _generalise_methods as gm
    import generalise as g

    from nmfsep.separation import separate

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only-folds", default="0,1,2,3,4")
    p.add_argument("--per-fold", type=int, default=16)
    p.add_argument("--mixtures", type=int, default=2000)
    p.add_argument("--hidden", default="256,256")
    p.add_argument("--weights", default="0.3,0.5,0.7")
    p.add_argument(
        "--exemplars",
        type=int,
        default=0,
        help="per-case models with this many exemplar bases per source (train --exemplars), "
        "for the refiner's training mixtures and the test mixtures alike; column 'plain' then "
        "gives the same models without the refiner",
    )
    p.add_argument(
        "--test-exemplars",
        type=int,
        default=None,
        help="exemplar bases of the *test* mixtures' models (default: --exemplars); e.g. a "
        "refiner learned on plain models' masks applied to exemplar models, as `train "
        "--exemplars 200 --refiner speech` does with the shipped network",
    )
    p.add_argument("--context", type=int, default=None, help="refiner frames of context each side")
    p.add_argument("--json", type=Path, default=None)
    a = p.parse_args()
    test_ex = a.exemplars if a.test_exemplars is None else a.test_exemplars
    hidden = tuple(int(x) for x in a.hidden.split(","))
    weights = [float(x) for x in a.weights.split(",")]
    corpus = g.Corpus()
    folds = g.make_folds(corpus, 5, 0)
    keep = {int(x) for x in a.only_folds.split(",")}
    folds = [f for f in folds if f.index in keep]
    mixtures = g.make_mixtures(corpus, folds, 16, 5.0, 0)
    rows = []
    for fold in folds:
        t = time.process_time()
        r = fold_refiner(g, gm, corpus, fold, a.mixtures, hidden, a.exemplars, a.context)
        print(f"fold {fold.index}: refiner {time.process_time() - t:.0f} CPU-s", flush=True)
        for m in (x for x in mixtures if x.fold == fold.index):
            if int(m.ident.split("_")[1]) >= a.per_fold:
                continue
            model = g.per_case_model(corpus, m, True, test_ex)
            model = dataclasses.replace(model, refiner=r)
            y = m.mix.astype(np.float32)[np.newaxis]
            row = {"id": m.ident, "fold": m.fold, "snr": int(m.snr)}
            row.update(g.peer_scores(corpus, m, True))
            if test_ex:
                est = separate(y, g.SR, model, refine=0).sources["speech"][0]
                row["plain"] = g.score(m.speech, est, m.mix)
            for w in weights:
                est = separate(y, g.SR, model, refine=w).sources["speech"][0]
                row[f"w{w:g}"] = g.score(m.speech, est, m.mix)
            rows.append(row)
            print(
                f"  {m.ident:58s} sup {row['supervised']['sdri']:6.2f} "
                + " ".join(f"w{w:g} {row[f'w{w:g}']['sdri']:6.2f}" for w in weights),
                flush=True,
            )
    plain = ["plain"] if test_ex else []
    cols = ["supervised", *plain, *(f"w{w:g}" for w in weights), "oracle"]
    print_shares(rows, cols, [f.index for f in folds])
    if a.json:
        a.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    main()
