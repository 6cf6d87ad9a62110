"""The per-case trained path and the built-in path fused (issue 12; session 18).

Two measurements, both from the two paths' speech estimates (their masks taken at a common
STFT, 2048 / 512 at 16 kHz: ``M = min(|S_est| / |X|, 1)``):

* ``folds``: fold F's test mixtures of ``bench/generalise.py`` (unseen speakers x unseen noises),
  the per-case model (``generalise.per_case_model``, no refiner) next to fold F's built-in model
  (the shipped recipe trained without fold F: about 36 min per fold on 2 busy cores, cached in
  ``bench/out/generalise_cache/folds``); fixed fusions (time-domain mean, mask min / max /
  geometric mean) and two bounds (the better of the two per mixture; a per-cell oracle choice
  of the two estimates);
* ``dev``: the dev speech cases through the CLI (``train speech= noise=``, so with the default
  trained-path refiner, then ``separate``; the shipped built-in model, which has not heard
  them), fused by ``Mp^a Mb^(1-a)``.

    OMP_NUM_THREADS=1 .venv/bin/python bench/fusion.py folds --folds 0
    OMP_NUM_THREADS=1 .venv/bin/python bench/fusion.py dev

Results are in bench/README.md ("the per-case and built-in speech masks fused").
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

N_FFT, HOP = 2048, 512
ROOT = Path(__file__).resolve().parents[1]


def _stft(x: np.ndarray) -> np.ndarray:
    import librosa

    return librosa.stft(np.asarray(x, np.float64), n_fft=N_FFT, hop_length=HOP)


def _istft(X: np.ndarray, n: int) -> np.ndarray:
    import librosa

    return librosa.istft(X, n_fft=N_FFT, hop_length=HOP, length=n)


def _masks(mix: np.ndarray, a: np.ndarray, b: np.ndarray):
    X, A, B = _stft(mix), _stft(a), _stft(b)
    mag = np.abs(X) + 1e-12
    return X, A, B, np.clip(np.abs(A) / mag, 0, 1), np.clip(np.abs(B) / mag, 0, 1)


def folds(which: list[int], per_fold: int) -> None:
    import _generalise_methods as gm
    import generalise as g

    from nmfsep.separation import separate

    corpus = g.Corpus()
    recipe = gm.RECIPES[gm.SHIPPED]
    rows = []
    for fold in [f for f in g.make_folds(corpus, 5, 0) if f.index in which]:
        model = g.fold_model(corpus, recipe, fold, True)
        for m in g.make_mixtures(corpus, [fold], per_fold, 5.0, 0):
            y = m.mix.astype(np.float32)[np.newaxis]
            n = len(m.mix)
            pc = np.asarray(separate(y, g.SR, g.per_case_model(corpus, m, True))
                            .sources["speech"][0][:n], float)  # fmt: skip
            bi = np.asarray(recipe.separate(model, y)[:n], float)
            X, P, B, Mp, Mb = _masks(m.mix, pc, bi)
            S = _stft(m.speech)
            pick = np.where(np.abs(P - S) <= np.abs(B - S), P, B)
            est = {
                "per-case": pc, "built-in": bi, "time mean": 0.5 * (pc + bi),
                "mask min": _istft(np.minimum(Mp, Mb) * X, n),
                "mask max": _istft(np.maximum(Mp, Mb) * X, n),
                "geometric mean": _istft(np.sqrt(Mp * Mb) * X, n),
                "per-cell oracle choice": _istft(pick, n),
            }  # fmt: skip
            row = {k: g.score(m.speech, v, m.mix)["sdri"] for k, v in est.items()}
            row["best of the two"] = max(row["per-case"], row["built-in"])
            rows.append(row)
            print(m.ident, {k: round(v, 2) for k, v in row.items()}, flush=True)
    print("mean SDRi:", {k: round(float(np.mean([r[k] for r in rows])), 2) for k in rows[0]})


def dev(data: Path) -> None:
    from quality import load, scores

    cmd = [sys.executable, "-m", "nmfsep"]
    weights = (0.5, 0.6, 0.7, 0.8)
    out: dict[str, dict[str, dict[str, float]]] = {}
    cases = [c["case"] for c in json.loads((data / "cases.json").read_text())
             if c["kind"] == "speech"]  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        for case in cases:
            d, w = data / case, Path(tmp) / case
            subprocess.run([*cmd, "train", f"speech={d / 'train_speech.wav'}",
                            f"noise={d / 'train_noise.wav'}", "-o", str(w / "m.npz"), "-q"],
                           check=True)  # fmt: skip
            subprocess.run([*cmd, "separate", str(d / "mix.wav"), "-m", str(w / "m.npz"),
                            "-o", str(w / "pc"), "-q"], check=True)  # fmt: skip
            subprocess.run([*cmd, "separate", str(d / "mix.wav"), "-o", str(w / "bi"), "-q"],
                           check=True)  # fmt: skip
            mix, _ = load(d / "mix.wav")
            ref, _ = load(d / "speech.wav")
            pc, bi = (
                load(w / "pc" / "mix" / "speech.wav")[0],
                load(w / "bi" / "mix" / "speech.wav")[0],
            )
            X, _, _, Mp, Mb = _masks(mix, pc, bi)
            row = {"per-case": scores(ref, pc, mix), "built-in": scores(ref, bi, mix)}
            for a in weights:
                row[f"a={a}"] = scores(ref, _istft(Mp**a * Mb ** (1 - a) * X, len(mix)), mix)
            out[case] = row
            print(case, {k: (round(v["sdri"], 2), round(v["si_sdri"], 2)) for k, v in row.items()})
    keys = list(next(iter(out.values())))
    print("mean SDRi / SI-SDRi:", {
        k: (round(float(np.mean([r[k]["sdri"] for r in out.values()])), 2),
            round(float(np.mean([r[k]["si_sdri"] for r in out.values()])), 2))
        for k in keys
    })  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["folds", "dev"])
    parser.add_argument("--folds", default="0", help="e.g. 0,1: the folds to score")
    parser.add_argument("--per-fold", type=int, default=16)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    args = parser.parse_args()
    if args.what == "folds":
        folds([int(x) for x in args.folds.split(",")], args.per_fold)
    else:
        dev(args.data)


if __name__ == "__main__":
    main()
