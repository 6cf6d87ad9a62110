"""A learned fusion of the per-case trained path and the built-in path (issue 12; session 19).

Session 18 (``bench/fusion.py``) found that the two paths err in different time-frequency
cells: a per-cell oracle choice between their speech estimates would win 2.3 dB on fold 0, a
blind geometric mean of their masks 0.46 dB there but nothing on the dev cases. This bench
measures the *learned* version: the trained-path refiner (:mod:`nmfsep.refine`: an MLP from the
mixture's log-mel spectrum and the per-case speech mask, over 5 frames, to the ideal ratio mask
of 80 mel bands, blended geometrically with the per-case mask at weight ``w``) given the
built-in path's band mask as a third input.

Both the MLP with the built-in mask ("fused") and the same MLP without it ("plain", the control:
same mixtures, same training) are trained *cross-fitted*: for the test fold F, on synthetic 3 s
mixtures of the test parts of the test recordings of every other fold j, each separated by the
per-case models of its speaker and noise (``generalise.per_case_model``: learned on the first
20 s of the recordings' training parts) and by fold j's built-in model, which has heard neither.
So the built-in masks the MLP learns from are as foreign to their speakers and noises as the
user's, and fold F's own recordings are in no training mixture. Fold F's test mixtures
(``generalise.make_mixtures``, 16 per fold, unseen speakers x unseen noises) are then separated
with fold F's built-in model and scored (SDRi / SI-SDRi / STOI of the speech).

Needs all five fold models of the shipped recipe (24-28 CPU-min each on this 2-core box, cached in
``bench/out/generalise_cache/folds``)::

    OMP_NUM_THREADS=1 .venv/bin/python bench/fusion_refiner.py --folds 0,1,2,3,4

Results are in bench/README.md ("A learned fusion of the two paths").
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))


def _builtin_mask(recipe, model, y: np.ndarray, sr: int) -> np.ndarray:
    """The built-in path's final speech mask (every source whose name starts with speech)."""
    from nmfsep.separation import separate

    sep = {"cluster_blend": 0.0, "stationary_blend": 0.0, **recipe.sep}
    masks = separate(y, sr, model, **sep).masks
    return sum(np.asarray(v, np.float32) for k, v in masks.items() if k.startswith("speech"))


def _case(g, corpus, m_speech, m_noise, mix, model_for, builtin, recipe):
    """(P, per-case mask, built-in mask, X) of one mixture, on the per-case model's STFT."""
    from nmfsep.separation import separate
    from nmfsep.spectral import stft

    y = mix.astype(np.float32)[np.newaxis]
    model = model_for(m_speech, m_noise)
    mp = np.asarray(separate(y, g.SR, model).masks["speech"], np.float32)
    mb = _builtin_mask(recipe, builtin, y, g.SR)
    if builtin.stft != model.stft or mb.shape != mp.shape:
        raise RuntimeError(f"STFTs differ: {builtin.stft} vs {model.stft}")
    X = stft(y, model.stft)[0]
    return np.abs(X) ** 2, mp, mb, X


def _feats(P, mp, mb, fb, norm_frames):
    from nmfsep import refine

    a = refine.features(P, mp, fb, context=refine.CONTEXT, norm_frames=norm_frames)
    b = refine.features(P, mb, fb, context=refine.CONTEXT, norm_frames=norm_frames)
    return a, b[:, b.shape[1] // 2 :]  # the built-in mask's bands only


def fold_data(g, corpus, fold, recipe, n_mix: int, seconds: float = 3.0):
    """Features (plain, built-in part) and targets of ``n_mix`` mixtures of fold ``fold``'s
    test recordings' test parts, cached per fold."""
    from supervised_refiner import pair_models

    from nmfsep import refine
    from nmfsep.spectral import stft

    path = g.CACHE / "fusion" / f"{fold.key()}_{n_mix}.npz"
    if path.is_file():
        with np.load(path) as z:
            return z["A"], z["B"], z["Y"]
    builtin = g.fold_model(corpus, recipe, fold, True)
    recs = fold.test_speakers + fold.test_noises
    bases = {k: g.recording_bases(corpus, k, True) for k in recs}
    model_for = pair_models(g, corpus, bases, fold.test_speakers[0])
    config = model_for(fold.test_speakers[0], fold.test_noises[0]).stft
    fb, _, _ = refine.mel_filters(g.SR, config.n_fft, config.n_freq, refine.N_MELS, g.SR / 2)
    norm_frames = round(refine.NORM_SECONDS / (config.hop_length / g.SR))
    speech = {k: corpus.split(k)[1] for k in fold.test_speakers}
    noise = {k: corpus.split(k)[1] for k in fold.test_noises}
    rng = np.random.default_rng([fold.index, 1919])
    n = int(seconds * g.SR)
    spk, noi = sorted(speech), sorted(noise)
    A, B, Y = [], [], []
    while len(A) < n_mix:
        ks = spk[rng.integers(len(spk))]
        s = g._excerpt(speech[ks], n, rng, active=True)[1]
        kn = noi[rng.integers(len(noi))]
        v = g._excerpt(noise[kn], n, rng, active=False)[1]
        if np.mean(s**2) < 1e-10 or np.mean(v**2) < 1e-12:
            continue
        snr = rng.uniform(-7, 12)  # as _generalise_methods.refiner_data
        s *= 0.05 / np.sqrt(np.mean(s**2)) * 10 ** rng.uniform(-0.25, 0.25)
        v *= np.sqrt(np.sum(s**2) / (np.sum(v**2) * 10 ** (snr / 10)))
        peak = float(np.max(np.abs(s + v)))
        if peak > 0.95:
            s, v = s * 0.95 / peak, v * 0.95 / peak
        P, mp, mb, _ = _case(g, corpus, ks, kn, s + v, model_for, builtin, recipe)
        a, b = _feats(P, mp, mb, fb, norm_frames)
        S = stft(s.astype(np.float32)[np.newaxis], config)[0]
        N = stft(v.astype(np.float32)[np.newaxis], config)[0]
        A.append(a)
        B.append(b)
        Y.append(refine.targets(np.abs(S) ** 2, np.abs(N) ** 2, fb))
    A, B, Y = np.concatenate(A), np.concatenate(B), np.concatenate(Y)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, A=A, B=B, Y=Y)
    return A, B, Y


#: columns per weight: the plain refiner, the fused one (both on the per-case mask), the fused
#: one on the geometric mean of the two paths' masks
VARIANTS = ("plain", "fused", "fusedgeo")


def _cached_net(path: Path, F: np.ndarray, Y: np.ndarray, hidden: tuple[int, ...]) -> _Net:
    import joblib

    if path.is_file():
        return joblib.load(path)
    net = _Net(F, Y, hidden)
    path.parent.mkdir(parents=True, exist_ok=True)
    joblib.dump(net, path)
    return net


class _Net:
    """The refiner's MLP (the settings of :func:`nmfsep.refine.fit_refiner`: ReLU layers,
    Adam, batches of 256, early stopping on a tenth of the frames, seed 0) for any input width:
    :class:`nmfsep.refine.Refiner` checks that its inputs are the 800 plain features."""

    def __init__(self, F: np.ndarray, Y: np.ndarray, hidden: tuple[int, ...]) -> None:
        import warnings

        from sklearn.exceptions import ConvergenceWarning
        from sklearn.neural_network import MLPRegressor

        F = np.asarray(F, np.float32)
        self.mean = F.mean(axis=0)
        scale = F.std(axis=0)
        self.scale = np.where(scale > 1e-6, scale, 1.0).astype(np.float32)
        self.mlp = MLPRegressor(hidden_layer_sizes=hidden, batch_size=256, max_iter=40,
                                learning_rate_init=1e-3, early_stopping=True,
                                n_iter_no_change=4, random_state=0)  # fmt: skip
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            self.mlp.fit((F - self.mean) / self.scale, Y)

    def predict(self, F: np.ndarray) -> np.ndarray:
        out = self.mlp.predict((np.asarray(F, np.float32) - self.mean) / self.scale)
        return np.clip(out, 0.0, 1.0).astype(np.float32)


def _apply(r, F, mp, P, X, config, fb_back, covered, w, n, sr):
    """The refined speech estimate: ``M_mlp^w M_pc^(1-w)`` on the covered bins, the mixture's
    STFT times it, inverse STFT."""
    from nmfsep.spectral import istft

    if r is None or w == 0:
        m = np.clip(mp, 0, 1).astype(np.float32)
        return np.asarray(istft((m * X)[np.newaxis], config, length=n), float)[0]
    M = fb_back @ r.predict(F).T
    ww = np.float32(w)
    m = np.where(covered[:, None], M**ww * mp ** (np.float32(1) - ww), mp)
    m = np.clip(m, 0, 1).astype(np.float32)
    return np.asarray(istft((m * X)[np.newaxis], config, length=n), float)[0]


def main() -> None:
    import _generalise_methods as gm
    import generalise as g
    from supervised_refiner import pair_models, print_shares

    from nmfsep import refine

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--folds", default="0,1,2,3,4", help="test folds to score")
    p.add_argument("--mixtures", type=int, default=400, help="training mixtures per fold")
    p.add_argument("--per-fold", type=int, default=16)
    p.add_argument("--hidden", default="256,256")
    p.add_argument("--weights", default="0.3,0.5")
    p.add_argument("--pool", default="0,1,2,3,4", help="folds whose mixtures may train")
    p.add_argument("--max-frames", type=int, default=75200, help="training frames (seeded subset)")
    p.add_argument("--data-only", action="store_true", help="only build the cached data")
    p.add_argument("--json", type=Path, default=None)
    a = p.parse_args()
    hidden = tuple(int(x) for x in a.hidden.split(","))
    weights = [float(x) for x in a.weights.split(",")]
    corpus = g.Corpus()
    recipe = gm.RECIPES[gm.SHIPPED]
    folds = g.make_folds(corpus, 5, 0)
    test = [int(x) for x in a.folds.split(",")]
    pool = [int(x) for x in a.pool.split(",")]
    need = test if a.data_only else pool
    data = {}
    for j in need:
        t = time.process_time()
        data[j] = fold_data(g, corpus, folds[j], recipe, a.mixtures)
        print(
            f"fold {j}: {len(data[j][0])} frames, {time.process_time() - t:.0f} CPU-s", flush=True
        )
    if a.data_only:
        return
    rows = []
    for F in test:
        fold = folds[F]
        others = [j for j in pool if j != F]
        A = np.concatenate([data[j][0] for j in others])
        B = np.concatenate([data[j][1] for j in others])
        Y = np.concatenate([data[j][2] for j in others])
        if len(A) > a.max_frames:
            keep = np.sort(np.random.default_rng(F).choice(len(A), a.max_frames, replace=False))
            A, B, Y = A[keep], B[keep], Y[keep]
        t = time.process_time()
        tag = f"f{F}_{''.join(map(str, others))}_{len(A)}_{'x'.join(map(str, hidden))}"
        r_plain = _cached_net(g.CACHE / "fusion" / f"net_plain_{tag}.joblib", A, Y, hidden)
        r_fused = _cached_net(
            g.CACHE / "fusion" / f"net_fused_{tag}.joblib", np.hstack([A, B]), Y, hidden
        )
        print(f"fold {F}: two refiners {time.process_time() - t:.0f} CPU-s", flush=True)
        builtin = g.fold_model(corpus, recipe, fold, True)
        mixtures = [m for m in g.make_mixtures(corpus, [fold], a.per_fold, 5.0, 0)]
        for m in mixtures:
            recs = [m.speaker, m.noise]
            bases = {k: g.recording_bases(corpus, k, True) for k in recs}
            model_for = pair_models(g, corpus, bases, m.speaker)
            P, mp, mb, X = _case(g, corpus, m.speaker, m.noise, m.mix, model_for, builtin, recipe)
            config = model_for(m.speaker, m.noise).stft
            fb, back, covered = refine.mel_filters(
                g.SR, config.n_fft, config.n_freq, refine.N_MELS, g.SR / 2
            )
            norm_frames = round(refine.NORM_SECONDS / (config.hop_length / g.SR))
            fa, fbm = _feats(P, mp, mb, fb, norm_frames)
            n = len(m.mix)
            row = {"id": m.ident, "fold": F, "snr": int(m.snr)}
            row.update(g.peer_scores(corpus, m, True))
            geo = np.sqrt(mp * mb)
            row["pc"] = g.score(m.speech, _apply(None, fa, mp, P, X, config, back, covered,
                                                  0.0, n, g.SR), m.mix)  # fmt: skip
            row["geo"] = g.score(m.speech, _apply(None, fa, geo, P, X, config, back, covered,
                                                   0.0, n, g.SR), m.mix)  # fmt: skip
            row["builtin"] = g.score(
                m.speech,
                np.asarray(recipe.separate(builtin, m.mix.astype(np.float32)[None]))[:n],
                m.mix,
            )
            for w in weights:
                est = _apply(r_plain, fa, mp, P, X, config, back, covered, w, n, g.SR)
                row[f"plain{w:g}"] = g.score(m.speech, est, m.mix)
                est = _apply(r_fused, np.hstack([fa, fbm]), mp, P, X, config, back, covered, w,
                             n, g.SR)  # fmt: skip
                row[f"fused{w:g}"] = g.score(m.speech, est, m.mix)
                est = _apply(r_fused, np.hstack([fa, fbm]), geo, P, X, config, back, covered,
                             w, n, g.SR)  # fmt: skip
                row[f"fusedgeo{w:g}"] = g.score(m.speech, est, m.mix)
            rows.append(row)
            print(
                f"  {m.ident:58s} pc {row['pc']['sdri']:6.2f} bi {row['builtin']['sdri']:6.2f} "
                f"geo {row['geo']['sdri']:6.2f} "
                + " ".join(
                    f"{k}{w:g} {row[f'{k}{w:g}']['sdri']:6.2f}" for w in weights for k in VARIANTS
                ),
                flush=True,
            )
    cols = ["supervised", "pc", "builtin", "geo"]
    cols += [f"{k}{w:g}" for w in weights for k in VARIANTS] + ["oracle"]
    print_shares(rows, cols, test)
    if a.json:
        a.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    main()
