"""Rebuild ``nmfsep/data/trained_refiner.npz``, the refiner that ``train --refiner`` attaches.

    OMP_NUM_THREADS=1 .venv/bin/python tools/make_trained_refiner.py [CORPUS_DIR]

The recipe measured on the held-out folds by ``bench/supervised_refiner.py``, on every speaker
and noise recording of the training corpus (default ``../shared/corpus``; the same files and
credits as the built-in model, ``nmfsep/data/README.md``): per-case models (the library's
training defaults) of each recording on the first 20 s of its first 70 %, 2000 synthetic 3 s
mixtures of the recordings' last 30 % (so the masks the refiner learns from are out of sample,
as a user's are), each separated by its own speaker's and noise's models with the library's
defaults; an MLP of 256 + 256 hidden units on their band masks (:mod:`nmfsep.refine`).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "tools"))

MIXTURES = 2000
HIDDEN = (256, 256)


def main() -> None:
    import _generalise_methods as gm
    import generalise as g
    from make_default_model import credits_of
    from supervised_refiner import pair_models

    from nmfsep import __version__, refine
    from nmfsep.model import save_refiner

    corpus_dir = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT.parent / "shared" / "corpus"
    corpus = g.Corpus(corpus_dir)
    speakers, noises = sorted(corpus.speech), sorted(corpus.noise)
    bases = {k: g.recording_bases(corpus, k) for k in speakers + noises}
    speech = {k: corpus.split(k)[1] for k in speakers}
    noise = {k: corpus.split(k)[1] for k in noises}
    F, Y = gm.refiner_data(
        pair_models(g, corpus, bases, speakers[0]), {}, speech, noise, n_mix=MIXTURES
    )
    r = refine.fit_refiner(F, Y, hidden=HIDDEN, fmax=g.SR / 2)
    entries = json.loads((corpus_dir / "corpus.json").read_text())
    meta = {
        "nmfsep_version": __version__,
        "recipe": f"supervised_refiner {MIXTURES} mixtures, hidden {'+'.join(map(str, HIDDEN))}",
        "training_frames": int(F.shape[0]),
        "credits": credits_of(entries),
    }
    dest = save_refiner(ROOT / "nmfsep" / "data" / "trained_refiner.npz", r, meta)
    print(f"{dest}: {dest.stat().st_size / 1e6:.2f} MB, {F.shape[0]} frames")


if __name__ == "__main__":
    main()
