"""Where the per-case trained path loses to the oracle: the model, or the training material?

    OMP_NUM_THREADS=1 .venv/bin/python bench/ceiling.py [--per-fold 8] [--variants A,B,Bs,Bn,C]

On the held-out fold mixtures of ``bench/generalise.py`` (unseen speakers x unseen noises, 5 s,
-5/0/5/10 dB), the library's ``train_model`` and ``separate`` with their defaults, bases from:

* **A**: the per-case models of ``generalise.per_case_model`` (the first 20 s of each
  recording's training part: what a user's ``train speech.wav noise.wav`` is) — its cache;
* **B**: the test excerpts themselves (the mixture's own clean speech and noise: an in-sample
  ceiling of 32 + 32 context bases, not something a user can have);
* **Bs** / **Bn**: the test excerpt for the speech (the noise) only, the other source as in A;
* **C**: the first 60 s of each training part instead of 20 s (more of the same recordings).

Scores: BSS-eval SDRi of the speech, next to the oracle Wiener mask's (the peers' cache of
``bench/generalise.py``). A measurement only (``bench/README.md``, "Per-case trained path:
where the gap is").
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

import generalise as g  # noqa: E402


def _model(sources: dict[str, np.ndarray]):
    from nmfsep.separation import train_model

    return train_model(
        {k: [v.astype(np.float32)[np.newaxis]] for k, v in sources.items()}, sr=g.SR, random_state=0
    )


def _mixed(per_case, own, source: str):
    """The per-case model with one source's bases replaced by ``own``'s."""
    from nmfsep.model import NMFModel

    bases = dict(per_case.bases)
    bases[source] = own.bases[source]
    return NMFModel(
        bases=bases, sr=g.SR, stft=per_case.stft, beta=per_case.beta, context=per_case.context
    )


def main() -> None:
    from nmfsep.separation import separate

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--per-fold", type=int, default=8, help="mixtures per fold (of 16)")
    p.add_argument("--variants", default="A,B,Bs,Bn,C")
    p.add_argument("--json", type=Path, default=None)
    a = p.parse_args()
    variants = a.variants.split(",")
    corpus = g.Corpus()
    folds = g.make_folds(corpus, 5)
    mixtures = g.make_mixtures(corpus, folds, 16, 5.0)
    mixtures = [m for m in mixtures if int(m.ident[3:5]) < a.per_fold]
    rows = []
    for m in mixtures:
        y = m.mix.astype(np.float32)[np.newaxis]
        peers = g.peer_scores(corpus, m, True, ["oracle", "supervised"])
        row = {"id": m.ident, "snr": m.snr, "oracle": peers["oracle"]["sdri"]}
        per_case = g.per_case_model(corpus, m, True)
        models = {}
        if "A" in variants:
            models["A"] = per_case
        if "B" in variants:
            models["B"] = _model({"speech": m.speech, "noise": m.noise_sig})
        if "Bs" in variants:
            models["Bs"] = _mixed(per_case, _model({"speech": m.speech}), "speech")
        if "Bn" in variants:
            models["Bn"] = _mixed(per_case, _model({"noise": m.noise_sig}), "noise")
        if "C" in variants:
            n = 60 * g.SR
            models["C"] = _model(
                {"speech": corpus.split(m.speaker)[0][:n], "noise": corpus.split(m.noise)[0][:n]}
            )
        for k, model in models.items():
            est = separate(y, g.SR, model).sources["speech"][0]
            row[k] = g.score(m.speech, est, m.mix)
        rows.append(row)
        cells = "  ".join(f"{k} {row[k]['sdri']:+6.2f}" for k in models)
        print(f"{m.ident[:44]:44s} oracle {row['oracle']:+6.2f}  {cells}", flush=True)
    oracle = float(np.mean([r["oracle"] for r in rows]))
    print(f"\n{len(rows)} mixtures; oracle SDRi {oracle:.2f} dB")
    print("| bases from | SDRi / SI-SDRi / STOI | share of the oracle | by SNR −5/0/5/10 dB |")
    print("|---|---|---:|---|")
    for k in variants:
        means = [float(np.mean([r[k][x] for r in rows])) for x in ("sdri", "si_sdri", "stoi")]
        by_snr = [np.mean([r[k]["sdri"] for r in rows if r["snr"] == s]) for s in g.SNRS]
        print(
            f"| {k} | {means[0]:.2f} / {means[1]:.2f} / {means[2]:.3f} | "
            f"{100 * means[0] / oracle:.1f} % | {' / '.join(f'{v:.2f}' for v in by_snr)} |"
        )
    if a.json:
        a.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
