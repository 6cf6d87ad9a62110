"""Noise-aware refiner features, measured on the folds of bench/generalise.py (issue 11).

    OMP_NUM_THREADS=1 .venv/bin/python bench/refiner_features.py [--only-folds 0,1,2,3,4]
        [--mixtures 2000] [--hidden 256,256] [--per-fold 16]

The built-in refiner (nmfsep/refine.py) sees the mixture's log-mel spectrum and the NMF mask
over +-2 frames (160 ms): nothing tells it what the noise alone looks like. Noise-aware
training (Seltzer, Yu & Wang, "An investigation of deep neural networks for noise robust
speech recognition", ICASSP 2013; Xu, Du, Dai & Lee, "Dynamic noise aware training for speech
enhancement based on deep neural networks", Interspeech 2014) appends an estimate of the
noise to the input. Here that estimate is a minimum-statistics floor of each mel band (the
band power smoothed over 3 frames, its minimum over the surrounding 1.5 s, on the same level
reference as the log-mel features): 80 more inputs, computed from the mixture alone.

For every fold: the fold's cached base model (recipe ``nb_n64_free2n_tracked_bins7``: the
shipped bases and settings without the refiner), ``--mixtures`` synthetic training mixtures
of the fold's training speakers and noises (``refiner_data``, as the shipped recipe), and two
MLPs trained on the same frames with the same seed: the shipped features, and the shipped
features plus the floor. Both are applied to the fold's test mixtures the way the engine does
(``M_mlp^0.5 M_nmf^0.5`` on the NMF path's final speech mask; the speech estimate is the
masked mixture), so the comparison is paired. Prints SDRi / SI-SDRi / STOI per fold and
overall, and how many mixtures each variant wins.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("PYTHONWARNINGS", "ignore")

SMOOTH_FRAMES = 3
FLOOR_SECONDS = 1.5
WEIGHT = 0.5


def noise_floor(P: np.ndarray, fb: np.ndarray, *, norm_frames: int, floor_frames: int):
    """Minimum-statistics floor of every mel band relative to the level reference of
    :func:`nmfsep.refine.features`, shape (n_frames, n_mels)."""
    from scipy.ndimage import minimum_filter1d, uniform_filter1d

    P = np.asarray(P, dtype=np.float32)
    weight = fb.sum(axis=1, keepdims=True)
    Pm = (fb @ P) / np.maximum(weight, 1e-12) + 1e-12
    smooth = uniform_filter1d(Pm, size=SMOOTH_FRAMES, axis=1, mode="nearest")
    floor = minimum_filter1d(smooth, size=floor_frames, axis=1, mode="nearest")
    covered = fb.sum(axis=0) > 1e-6
    level = P[covered].mean(axis=0, dtype=np.float64)
    ref = uniform_filter1d(level, size=norm_frames, mode="nearest")
    return np.ascontiguousarray((np.log(floor) - np.log(ref + 1e-12)).T, dtype=np.float32)


class _Features:
    """``refine.features`` with the floor appended (the extra columns come last)."""

    def __init__(self, original, floor_frames: int) -> None:
        self.original = original
        self.floor_frames = floor_frames

    def __call__(self, P, mask, fb, *, context, norm_frames):
        F = self.original(P, mask, fb, context=context, norm_frames=norm_frames)
        E = noise_floor(P, fb, norm_frames=norm_frames, floor_frames=self.floor_frames)
        return np.concatenate([F, E], axis=1)


def fit(F: np.ndarray, Y: np.ndarray, hidden: tuple[int, ...]):
    """``nmfsep.refine.fit_refiner``'s network and training settings, returned as a predict
    function: its ``Refiner`` checks the input layout, which the extra columns break."""
    from sklearn.neural_network import MLPRegressor

    mean = F.mean(axis=0)
    scale = F.std(axis=0)
    scale = np.where(scale > 1e-6, scale, 1.0).astype(np.float32)
    mlp = MLPRegressor(
        hidden_layer_sizes=hidden,
        batch_size=256,
        learning_rate_init=1e-3,
        max_iter=40,
        early_stopping=True,
        n_iter_no_change=4,
        random_state=0,
    )
    mlp.fit((F - mean) / scale, Y)
    return lambda X: np.clip(mlp.predict((X - mean) / scale), 0.0, 1.0)


def main() -> None:
    import warnings

    import _generalise_methods as gm
    import generalise as g
    from threadpoolctl import threadpool_limits

    from nmfsep import refine
    from nmfsep.separation import separate
    from nmfsep.spectral import istft, stft

    warnings.simplefilter("ignore")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only-folds", default="0,1,2,3,4")
    parser.add_argument("--mixtures", type=int, default=2000)
    parser.add_argument("--hidden", default="256,256")
    parser.add_argument("--per-fold", type=int, default=16)
    args = parser.parse_args()
    threadpool_limits(1)
    hidden = tuple(int(h) for h in args.hidden.split(","))
    recipe = gm.RECIPES["nb_n64_free2n_tracked_bins7"]
    sep0 = dict(recipe.sep)
    corpus = g.Corpus()
    folds = [f for f in g.make_folds(corpus, 5, 0) if str(f.index) in args.only_folds.split(",")]
    mixtures = g.make_mixtures(corpus, folds, args.per_fold, 5.0, 0)
    rows = []
    for fold in folds:
        model = g.fold_model(corpus, recipe, fold, True)
        config = model.stft
        hop_s = config.hop_length / g.SR
        norm_frames = round(refine.NORM_SECONDS / hop_s)
        floor_frames = round(FLOOR_SECONDS / hop_s)
        fb, back, covered = refine.mel_filters(
            g.SR, config.n_fft, config.n_freq, refine.N_MELS, g.SR / 2
        )
        speech = {k: corpus.audio(k) for k in fold.train_speakers}
        noise = {k: corpus.audio(k) for k in fold.train_noises}
        original = refine.features
        refine.features = _Features(original, floor_frames)
        try:
            F, Y = gm.refiner_data(model, sep0, speech, noise, n_mix=args.mixtures)
        finally:
            refine.features = original
        d0 = F.shape[1] - refine.N_MELS
        nets = {"shipped features": fit(F[:, :d0], Y, hidden), "+ noise floor": fit(F, Y, hidden)}
        del F, Y
        for m in (x for x in mixtures if x.fold == fold.index):
            mix = m.mix.astype(np.float32)[np.newaxis]
            res = separate(mix, g.SR, model, **sep0)
            X = stft(mix, config)[0]
            M = res.masks["speech"]
            P = np.abs(X) ** 2
            Fm = _Features(original, floor_frames)(
                P, M, fb, context=refine.CONTEXT, norm_frames=norm_frames
            )
            row = {"fold": fold.index, "snr": int(m.snr)}
            row["no refiner"] = g.score(m.speech, res.sources["speech"][0], m.mix)
            for name, net in nets.items():
                B = net(Fm[:, :d0] if name == "shipped features" else Fm)
                Mr = np.where(covered[:, None], (back @ B.T) ** WEIGHT * M ** (1 - WEIGHT), M)
                est = istft((Mr * X)[np.newaxis], config, length=mix.shape[-1])[0]
                row[name] = g.score(m.speech, est, m.mix)
            rows.append(row)
            print(
                m.ident,
                " ".join(f"{row[k]['sdri']:.2f}" for k in ("no refiner", *nets)),
                flush=True,
            )
        sub = [r for r in rows if r["fold"] == fold.index]
        print(
            f"fold {fold.index}: "
            + ", ".join(
                f"{k} {np.mean([r[k]['sdri'] for r in sub]):.2f}" for k in ("no refiner", *nets)
            ),
            flush=True,
        )
    names = ["no refiner", "shipped features", "+ noise floor"]
    print(f"\n{len(rows)} mixtures, {args.mixtures} training mixtures per fold, hidden {hidden}")
    print("| variant | SDRi / SI-SDRi / STOI | by fold (SDRi) |")
    print("|---|---|---|")
    for k in names:
        mean = [np.mean([r[k][x] for r in rows]) for x in ("sdri", "si_sdri", "stoi")]
        by = " ".join(
            f"{np.mean([r[k]['sdri'] for r in rows if r['fold'] == f.index]):.2f}" for f in folds
        )
        print(f"| {k} | {mean[0]:.2f} / {mean[1]:.2f} / {mean[2]:.3f} | {by} |")
    d = np.array([r["+ noise floor"]["sdri"] - r["shipped features"]["sdri"] for r in rows])
    print(f"+ noise floor better on {(d > 0).sum()} of {len(d)}, mean {d.mean():+.2f} dB")


if __name__ == "__main__":
    main()
