"""Candidate recipes for the built-in speech/noise model, measured by ``bench/generalise.py``.

A recipe says how a model is trained from a set of speakers and noise recordings
(``train(speech, noise, categories) -> NMFModel``) and how the built-in path separates a mixture
with it (``separate(model, y) -> speech``). Sources whose name starts with ``speech`` are the
wanted source; everything else is noise.

Experimental separation methods that the library's engine does not have (yet) live here too:

* :func:`group_sparse_h` — activations with block (group) sparsity (Sun & Mysore 2013);
* :func:`separate_adaptive` — fixed speech bases, a fixed noise bank, and extra noise bases learned
  on the mixture, with guards against them absorbing speech.

Training material for the learned mask refiner (:mod:`nmfsep.refine`) is made here too
(:func:`refiner_data`, the :class:`Refined` recipes): synthetic mixtures of the training
speakers and noises, separated by the recipe's own path.

The math of each is in its docstring, precise enough to move into the engine.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

SR = 16000
EPS = 1e-9


# -- helpers ------------------------------------------------------------------------------------


def reference_model_like(model):
    """A model with the current default model's shape (32 + 32 bases, context 5, n_fft 2048):
    the speed reference. Its bases are the first 32 speech and 32 noise columns of ``model``
    (or random, if it has fewer); speed does not depend on their values."""
    from nmfsep.model import NMFModel
    from nmfsep.spectral import STFTConfig

    config = STFTConfig(n_fft=2048, hop_length=512)
    rng = np.random.default_rng(0)
    n = config.n_freq * 5
    bases = {
        name: rng.uniform(0.1, 1.0, size=(n, 32)).astype(np.float32) for name in ("speech", "noise")
    }
    return NMFModel(bases=bases, sr=SR, stft=config, beta=1.0, context=5)


def separate_default(model, y: np.ndarray) -> np.ndarray:
    from nmfsep.separation import separate

    res = separate(y, SR, model)
    return _speech_of(res.sources)


def _speech_of(sources: dict[str, np.ndarray]) -> np.ndarray:
    out = sum(v for k, v in sources.items() if k.startswith("speech"))
    return np.asarray(out, dtype=np.float64)[0]


def _key(obj: dict) -> str:
    return hashlib.sha1(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:10]


# -- recipes ------------------------------------------------------------------------------------


@dataclass
class Generic:
    """One speech and one noise dictionary learned on all the training audio (pooled frames),
    separated by the library's ``separate`` with options ``sep``."""

    name: str
    k_speech: int = 32
    k_noise: int = 32
    max_frames: int = 4000
    max_iter: int = 100
    context: int = 5
    n_fft: int = 2048
    l1_train: float = 0.0
    sep: dict[str, Any] = field(default_factory=dict)
    #: noise categories left out of the noise bank (speech-like noises: babble, music)
    exclude: tuple[str, ...] = ()

    def train_params(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("name")
        d.pop("sep")
        if not d["exclude"]:
            d.pop("exclude")  # the cache keys of the recipes measured before the field
        else:
            d["exclude"] = list(d["exclude"])
        d["kind"] = "generic"
        return d

    def train_key(self) -> str:
        return "generic_" + _key(self.train_params())

    def describe(self) -> str:
        return f"{json.dumps(self.train_params())}, separate {json.dumps(self.sep)}"

    def stft(self):
        from nmfsep.spectral import STFTConfig

        return STFTConfig(n_fft=self.n_fft, hop_length=self.n_fft // 4)

    def train(self, speech: dict[str, np.ndarray], noise: dict[str, np.ndarray], categories):
        from nmfsep.model import NMFModel
        from nmfsep.separation import train_model

        data = {
            "speech": [y[np.newaxis] for y in speech.values()],
            "noise": [
                y[np.newaxis]
                for k, y in noise.items()
                if categories.get(k, "").split("/")[0] not in self.exclude
            ],
        }
        common = dict(
            sr=SR,
            stft_config=self.stft(),
            context=self.context,
            max_iter=self.max_iter,
            max_frames=self.max_frames,
            l1=self.l1_train,
            refiner=None,  # a recipe's refiner is its own (refine_* recipes), never train's
        )
        if self.k_speech == self.k_noise:
            return train_model(data, n_components=self.k_speech, random_state=0, **common)
        bases = {}
        for i, (name, k) in enumerate((("speech", self.k_speech), ("noise", self.k_noise))):
            m = train_model({name: data[name]}, n_components=k, random_state=i, **common)
            bases[name] = m.bases[name]
        return NMFModel(bases=bases, sr=SR, stft=m.stft, beta=m.beta, context=m.context)

    def separate(self, model, y: np.ndarray) -> np.ndarray:
        from nmfsep.separation import separate

        # a recipe without the cluster blend or the stationary expert measures neither, even with
        # the shipped model (which recommends them since sessions 13 and 14)
        sep = {"cluster_blend": 0.0, "stationary_blend": 0.0, **self.sep}
        return _speech_of(separate(y, SR, model, **sep).sources)

    def builtin_settings(self) -> dict[str, Any]:
        """Options of ``nmfsep.separation.separate`` the built-in path should use."""
        return dict(self.sep)


# -- experimental separation engine (numpy, KL) -------------------------------------------------


def _stft_mag(y: np.ndarray, config):
    from nmfsep.spectral import stft

    X = stft(np.asarray(y, dtype=np.float32).reshape(1, -1), config)
    return X, np.abs(X).mean(axis=0).astype(np.float32)


def _stack(V: np.ndarray, context: int) -> np.ndarray:
    F, T = V.shape
    half = context // 2
    out = np.empty((context, F, T), dtype=V.dtype)
    for j in range(context):
        out[j] = V[:, np.clip(np.arange(T) + j - half, 0, T - 1)]
    return out.reshape(context * F, T)


def _unstack(S: np.ndarray, context: int) -> np.ndarray:
    F, T = S.shape[0] // context, S.shape[1]
    half = context // 2
    blocks = S.reshape(context, F, T)
    acc = np.zeros((F, T), dtype=S.dtype)
    count = np.zeros(T, dtype=S.dtype)
    for j in range(context):
        shift = j - half
        lo, hi = max(0, -shift), min(T, T - shift)
        if lo < hi:
            acc[:, lo + shift : hi + shift] += blocks[j, :, lo:hi]
            count[lo + shift : hi + shift] += 1
    return acc / count


def group_sparse_h(
    V: np.ndarray,
    W: np.ndarray,
    groups: np.ndarray,
    *,
    lam: float = 0.0,
    penalty: str = "log",
    l1: float = 0.0,
    n_iter: int = 20,
    H: np.ndarray | None = None,
    eps_group: float = 1e-3,
) -> np.ndarray:
    """Activations ``H >= 0`` for fixed bases ``W`` under KL divergence with block sparsity.

    Objective (V at unit mean, T frames, groups g of columns; group -1 is unpenalised)::

        D_KL(V | W H) + l1 * sum(H) + lam * T * sum_g phi(H_g)

    with ``phi = log(eps_group + ||H_g||_1 / T)`` (``penalty="log"``, Sun & Mysore 2013, the
    block-sparse "universal speech model" prior) or ``phi = ||H_g||_F / sqrt(T)``
    (``penalty="l12"``: group lasso, L1 of the blocks' L2 norms). ``||H_g||`` is over all of
    the block's rows *and* all frames, so a whole speaker (or noise) block is switched on or off
    for the recording. Scaling by T makes ``lam`` mean the same for any duration.

    Majorise-minimise multiplicative update (the concave log is majorised by its tangent, the
    convex L2 norm is handled by the usual gradient split), for every column k of group g::

        H_k <- H_k * [W_k^T (V / WH)] / [W_k^T 1 + l1 + lam * d_g]
        d_g = 1 / (T * eps_group + ||H_g||_1)         (log)
        d_g = sqrt(T) * H_k / ||H_g||_F / T * T = H_k * sqrt(T) / ||H_g||_F   (l12, elementwise)

    ``d_g`` is recomputed from the current H before every update. Both keep the objective
    non-increasing (log: MM; l12: heuristic split of the gradient, standard in group-sparse MU).
    """
    K, T = W.shape[1], V.shape[1]
    Wsum = W.sum(axis=0)[:, None]
    if H is None:
        H = np.full((K, T), float(V.mean()) / max(K, 1) / max(float(Wsum.mean()), EPS), V.dtype)
        H *= V.sum(axis=0, keepdims=True) / np.maximum((W @ H).sum(axis=0, keepdims=True), EPS)
    H = H.astype(V.dtype, copy=True)
    gid = np.asarray(groups)
    uniq = [g for g in np.unique(gid) if g >= 0]
    members = [np.flatnonzero(gid == g) for g in uniq]
    for _ in range(n_iter):
        R = V / np.maximum(W @ H, EPS)
        num = W.T @ R
        den = np.broadcast_to(Wsum + l1, H.shape).copy()
        if lam > 0 and members:
            for cols in members:
                if penalty == "log":
                    den[cols] += lam * T / (T * eps_group + float(H[cols].sum()))
                else:
                    nrm = float(np.sqrt(np.sum(H[cols] ** 2))) + EPS
                    den[cols] += lam * np.sqrt(T) * H[cols] / nrm
        H *= num / np.maximum(den, EPS)
    return H


def wiener_speech(X, parts_speech, parts_noise, power: float = 2.0):
    """Speech STFT from the Wiener mask ``Ps^p / (Ps^p + Pn^p)``."""
    ps = np.maximum(parts_speech, 0) ** power
    pn = np.maximum(parts_noise, 0) ** power
    mask = ps / np.maximum(ps + pn, 1e-30)
    return mask[np.newaxis] * X


def _istft(S, config, n):
    from nmfsep.spectral import istft

    return np.asarray(istft(S, config, length=n), dtype=np.float64)[0]


def separate_adaptive(
    model,
    y: np.ndarray,
    *,
    lam: float = 0.0,
    penalty: str = "log",
    group_noise: bool = False,
    l1: float = 0.0,
    n_iter: int = 20,
    n_free: int = 0,
    free_share: float = 0.3,
    free_iter: int = 20,
    rho: float = 0.0,
    floor_bases: int = 0,
    power: float = 2.0,
    select: tuple[int, int] | None = None,
) -> np.ndarray:
    """Speech estimate with the experimental engine.

    Sources of ``model`` named ``speech*`` are the speech blocks (one group each), the others
    noise blocks (one group each when ``group_noise``). Steps:

    1. ``H`` by :func:`group_sparse_h` with all bases fixed (``lam``, ``penalty``, ``l1``).
    2. ``select=(a, b)``: keep only the ``a`` speech blocks and ``b`` noise blocks with the most
       activation energy ``||W_g H_g||_1`` (cheap model selection), and refit H (no group term).
    3. ``floor_bases`` (noise-floor bases): the mean spectrum of the ``free_share`` least
       speech-dominated frames (speech share ``sum W_s H_s / sum WH`` of step 1), repeated over
       the context frames, added as fixed noise bases (``floor_bases`` percentile spectra).
    4. ``n_free`` adaptive noise bases, *learned only on low-speech frames*: the ``free_share``
       frames with the smallest speech share of step 1. Initialised from the bank's most active
       noise bases, updated by KL MU on those frames with all other bases fixed::

           W_f <- (W_f * [(V/WH)_S H_{f,S}^T] + rho * W_0) / (1 H_{f,S}^T + rho)

       (``rho``: conjugate prior pulling W_f toward its bank initialisation ``W_0``, the
       minimiser of ``D(V_S|WH_S) + rho * D_KL(W_0|W_f)``), columns renormalised to unit L2.
       Frames S carry little speech, so the new bases cannot learn it.
    5. Final H on all frames with every basis fixed, Wiener mask of power ``power``.
    """
    config = model.stft
    c = model.context
    X, Vm = _stft_mag(y, config)
    V = _stack(Vm, c)
    V = V / max(float(V.mean()), EPS)
    names = model.source_names
    blocks = [model.bases[n] for n in names]
    is_speech = [n.startswith("speech") for n in names]
    W = np.concatenate(blocks, axis=1).astype(np.float32)
    col_block = np.repeat(np.arange(len(blocks)), [b.shape[1] for b in blocks])
    speech_col = np.repeat(np.array(is_speech), [b.shape[1] for b in blocks])
    groups = np.where(speech_col | group_noise, col_block, -1)
    H = group_sparse_h(V, W, groups, lam=lam, penalty=penalty, l1=l1, n_iter=n_iter)
    if select is not None:
        energy = np.array(
            [
                float(W[:, col_block == b].sum(0) @ H[col_block == b].sum(1))
                for b in range(len(blocks))
            ]
        )
        keep = np.zeros(len(blocks), bool)
        for want, flag in ((select[0], True), (select[1], False)):
            idx = [b for b in np.argsort(-energy) if is_speech[b] == flag][:want]
            keep[idx] = True
        cols = keep[col_block]
        W, speech_col, col_block = W[:, cols], speech_col[cols], col_block[cols]
        H = group_sparse_h(V, W, np.full(W.shape[1], -1), l1=l1, n_iter=n_iter, H=H[cols])
    extra = []
    if floor_bases or n_free:
        sp = (W[:, speech_col] @ H[speech_col]).sum(0) / np.maximum((W @ H).sum(0), EPS)
        n_low = max(3, round(free_share * V.shape[1]))
        low = np.argsort(sp)[:n_low]
    if floor_bases:
        F = Vm.shape[0]
        Vlow = Vm[:, low]
        for q in np.linspace(50, 90, floor_bases) if floor_bases > 1 else [None]:
            spec = Vlow.mean(1) if q is None else np.percentile(Vlow, q, axis=1)
            b = np.tile(spec, c)
            extra.append((b / (np.linalg.norm(b) + EPS))[:, None])
        del F
    if n_free:
        noise_cols = np.flatnonzero(~speech_col)
        act = (H[noise_cols] * W[:, noise_cols].sum(0)[:, None]).sum(1)
        init = W[:, noise_cols[np.argsort(-act)[:n_free]]].copy()
        if init.shape[1] < n_free:
            rng = np.random.default_rng(0)
            init = np.concatenate(
                [init, rng.uniform(0.5, 1.5, (W.shape[0], n_free - init.shape[1]))], 1
            )
        W0 = init.astype(np.float32)
        Wf = W0.copy()
        Vs = V[:, low]
        Wall = np.concatenate([W, Wf], 1)
        Hs = np.concatenate(
            [H[:, low], np.full((n_free, low.size), float(H[:, low].mean()), V.dtype)]
        )
        K0 = W.shape[1]
        for _ in range(free_iter):
            Wsum = Wall.sum(0)[:, None]
            R = Vs / np.maximum(Wall @ Hs, EPS)
            Hs *= (Wall.T @ R) / np.maximum(Wsum + l1, EPS)
            R = Vs / np.maximum(Wall @ Hs, EPS)
            hf = Hs[K0:]
            Wf = (Wf * (R @ hf.T) + rho * W0) / np.maximum(hf.sum(1)[None, :] + rho, EPS)
            nrm = np.linalg.norm(Wf, axis=0) + EPS
            Wf /= nrm
            Hs[K0:] *= nrm[:, None]
            Wall[:, K0:] = Wf
        extra.append(Wf)
    if extra:
        E = np.concatenate(extra, 1).astype(np.float32)
        W = np.concatenate([W, E], 1)
        speech_col = np.concatenate([speech_col, np.zeros(E.shape[1], bool)])
        H = np.concatenate([H, np.full((E.shape[1], H.shape[1]), float(H.mean()), V.dtype)])
        H = group_sparse_h(V, W, np.full(W.shape[1], -1), l1=l1, n_iter=n_iter, H=H)
    Ps = _unstack(W[:, speech_col] @ H[speech_col], c)
    Pn = _unstack(W[:, ~speech_col] @ H[~speech_col], c)
    return _istft(wiener_speech(X, Ps, Pn, power), config, y.shape[-1])


@dataclass
class Blocks:
    """Universal model: one block of bases per training speaker (``speech_<id>``) and one per
    noise recording or category (``noise_<id>``), each learned on its own, side by side; the
    blocks are fold-independent and cached per recording."""

    name: str
    k_speaker: int = 8
    k_noise: int = 4
    noise_by: str = "file"  # or "category"
    max_frames: int = 1500
    max_iter: int = 100
    context: int = 5
    n_fft: int = 2048
    sep: dict[str, Any] = field(default_factory=dict)

    def train_params(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("name")
        d.pop("sep")
        d["kind"] = "blocks"
        return d

    def train_key(self) -> str:
        return "blocks_" + _key(self.train_params())

    def describe(self) -> str:
        return f"{json.dumps(self.train_params())}, separate {json.dumps(self.sep)}"

    def _block(self, ident: str, ys: list[np.ndarray], k: int) -> np.ndarray:
        from pathlib import Path

        from nmfsep.model import load_model
        from nmfsep.separation import train_model
        from nmfsep.spectral import STFTConfig

        p = dict(self.train_params(), ident=ident, k=k)
        path = (
            Path(__file__).resolve().parent
            / "out"
            / "generalise_cache"
            / "blocks"
            / (f"{ident}_{_key(p)}.npz")
        )
        if path.is_file():
            return load_model(path).bases["x"]
        m = train_model(
            {"x": [y[np.newaxis] for y in ys]},
            sr=SR,
            n_components=k,
            stft_config=STFTConfig(n_fft=self.n_fft, hop_length=self.n_fft // 4),
            context=self.context,
            max_iter=self.max_iter,
            max_frames=self.max_frames,
            random_state=0,
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        m.save(path)
        return m.bases["x"]

    def train(self, speech, noise, categories):
        from nmfsep.model import NMFModel
        from nmfsep.spectral import STFTConfig

        bases = {}
        for k, y in speech.items():
            bases[f"speech_{k}"[:64]] = self._block(k, [y], self.k_speaker)
        if self.noise_by == "file":
            for k, y in noise.items():
                bases[f"noise_{k}"[:64]] = self._block(k, [y], self.k_noise)
        else:
            cats: dict[str, list[str]] = {}
            for k in noise:
                cats.setdefault(categories[k].split("/")[0], []).append(k)
            for cat, ids in sorted(cats.items()):
                ident = "cat_" + cat + "_" + _key(sorted(ids))
                bases[f"noise_{cat}"] = self._block(ident, [noise[i] for i in ids], self.k_noise)
        return NMFModel(
            bases=bases,
            sr=SR,
            stft=STFTConfig(n_fft=self.n_fft, hop_length=self.n_fft // 4),
            beta=1.0,
            context=self.context,
        )

    def separate(self, model, y: np.ndarray) -> np.ndarray:
        return separate_adaptive(model, y, **self.sep)


@dataclass
class GenericAdaptive(Generic):
    """A :class:`Generic` model separated by :func:`separate_adaptive` (options ``sep``)."""

    def separate(self, model, y: np.ndarray) -> np.ndarray:
        return separate_adaptive(model, y, **self.sep)


def _nobabble(
    name: str,
    *,
    free: int = 2,
    gain: str | None = None,
    analysis_bands: int | None = None,
    max_iter_sep: int | None = None,
    **train: Any,
) -> Generic:
    """A :class:`Generic` recipe trained without babble and music noises, separated with
    ``free`` free noise bases, p = 1 (and ``gain``, ``analysis_bands``, ``max_iter_sep``
    iterations when given)."""
    sep: dict[str, Any] = {"free_components": free, "mask_power": 1.0, "free_source": "noise"}
    if gain is not None:
        sep["gain"] = gain
    if analysis_bands is not None:
        sep["analysis_bands"] = analysis_bands
    if max_iter_sep is not None:
        sep["max_iter"] = max_iter_sep
    return Generic(name, exclude=("babble", "music"), sep=sep, **train)


def _bins7(name: str, max_frames: int = 6000, **train: Any) -> Generic:
    """A :class:`_nobabble` recipe separated like the shipped one (tracked gain, every bin,
    7 iterations)."""
    return _nobabble(
        name, gain="tracked", analysis_bands=0, max_iter_sep=7, max_frames=max_frames, **train
    )


# -- the learned refiner (nmfsep.refine) --------------------------------------------------------


def refiner_data(
    model,
    sep: dict[str, Any],
    speech: dict[str, np.ndarray],
    noise: dict[str, np.ndarray],
    *,
    n_mix: int,
    seconds: float = 3.0,
    seed: int = 0,
    context: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Features and targets of the refiner (:func:`nmfsep.refine.features` / ``targets``) on
    ``n_mix`` seeded synthetic mixtures: a random speaker's excerpt (RMS 0.05 within ±5 dB)
    plus a random noise recording's at SNR U[-7, 12] dB, separated by the model's built-in path
    (``separate(model, **sep)``, its final speech mask). ``model`` may also be a function of
    the (speaker, noise) pair returning the model to separate that mixture with (the
    per-case trained path)."""
    from generalise import _excerpt

    from nmfsep import refine
    from nmfsep.separation import separate
    from nmfsep.spectral import stft

    rng = np.random.default_rng([seed, 99])
    n = int(seconds * SR)
    model_for = model if callable(model) else (lambda _s, _n: model)
    config = model_for(sorted(speech)[0], sorted(noise)[0]).stft
    fb, _, _ = refine.mel_filters(SR, config.n_fft, config.n_freq, refine.N_MELS, SR / 2)
    norm_frames = round(refine.NORM_SECONDS / (config.hop_length / SR))
    context = refine.CONTEXT if context is None else context
    spk, noi = sorted(speech), sorted(noise)
    feats, targs = [], []
    while len(feats) < n_mix:
        ks = spk[rng.integers(len(spk))]  # this order of draws: the shipped model's mixtures
        s = _excerpt(speech[ks], n, rng, active=True)[1]
        kn = noi[rng.integers(len(noi))]
        v = _excerpt(noise[kn], n, rng, active=False)[1]
        if np.mean(s**2) < 1e-10 or np.mean(v**2) < 1e-12:
            continue
        snr = rng.uniform(-7, 12)
        s *= 0.05 / np.sqrt(np.mean(s**2)) * 10 ** rng.uniform(-0.25, 0.25)
        v *= np.sqrt(np.sum(s**2) / (np.sum(v**2) * 10 ** (snr / 10)))
        peak = float(np.max(np.abs(s + v)))
        if peak > 0.95:
            s, v = s * 0.95 / peak, v * 0.95 / peak
        mix = (s + v).astype(np.float32)[np.newaxis]
        mask = separate(mix, SR, model_for(ks, kn), **sep).masks["speech"]
        X = stft(mix, config)[0]
        S = stft(s.astype(np.float32)[np.newaxis], config)[0]
        N = stft(v.astype(np.float32)[np.newaxis], config)[0]
        P = np.abs(X) ** 2
        feats.append(refine.features(P, mask, fb, context=context, norm_frames=norm_frames))
        targs.append(refine.targets(np.abs(S) ** 2, np.abs(N) ** 2, fb))
    return np.concatenate(feats), np.concatenate(targs)


@dataclass
class Refined(Generic):
    """A :class:`Generic` recipe plus a learned mask refiner (:mod:`nmfsep.refine`), trained on
    ``refine_mixtures`` synthetic mixtures of *all* the training speakers and noises (babble and
    music included: the refiner is not a noise bank) separated by the recipe's path without it;
    the built-in path then blends it in with weight ``sep["refine"]``."""

    refine_mixtures: int = 2000
    refine_hidden: tuple[int, ...] = (256, 256)
    #: 2: band means and the covered bins' level (rate-independent features), not band sums
    refine_features: int = 2
    #: frames of context each side (:data:`nmfsep.refine.CONTEXT` = 2 until session 7)
    refine_context: int = 2
    refine_max_iter: int = 40

    def train_params(self) -> dict[str, Any]:
        d = super().train_params()
        d["kind"] = "refined"
        d["refine_hidden"] = list(self.refine_hidden)
        # the cache keys of the recipes measured before these fields
        if d["refine_context"] == 2:
            d.pop("refine_context")
        if d["refine_max_iter"] == 40:
            d.pop("refine_max_iter")
        return d

    def train(self, speech, noise, categories):
        from nmfsep import refine

        base = Generic.train(self, speech, noise, categories)
        # the refiner learns on the model's own masks: no refiner, no cluster blend
        sep0 = {**self.sep, "refine": 0.0, "cluster_blend": 0.0}
        F, Y = refiner_data(
            base, sep0, speech, noise, n_mix=self.refine_mixtures, context=self.refine_context
        )
        refiner = refine.fit_refiner(
            F,
            Y,
            hidden=self.refine_hidden,
            fmax=SR / 2,
            context=self.refine_context,
            max_iter=self.refine_max_iter,
        )
        return dataclasses.replace(base, refiner=refiner)


def _refined(name: str, weight: float = 0.5, **train: Any) -> Refined:
    """The shipped recipe (:func:`_bins7`, 64 noise bases) with a learned refiner of weight
    ``weight``."""
    base = _bins7("base", k_noise=64)
    return Refined(
        name,
        k_noise=64,
        max_frames=6000,
        exclude=base.exclude,
        sep={**base.sep, "refine": weight},
        **train,
    )


RECIPES: dict[str, Any] = {
    # the current default model's recipe (32 + 32 bases, context 5), separate() defaults
    "current": Generic("current"),
    # the same model, 2 free bases learned on the mixture, magnitude-ratio mask (l1 0, the
    # library's default with free bases)
    "plain_free2_p1": Generic("plain_free2_p1", sep={"free_components": 2, "mask_power": 1.0}),
    # the same, the 2 free bases counted as noise (learned on the analysis bands: 2.7x faster)
    "plain_free2n_p1": Generic(
        "plain_free2n_p1",
        sep={"free_components": 2, "mask_power": 1.0, "free_source": "noise"},
    ),
    # larger pooled dictionaries (the compressed analysis of the engine pays for them)
    "big64": Generic("big64", k_speech=64, k_noise=64, max_frames=6000),
    "big64_p1": Generic(
        "big64_p1", k_speech=64, k_noise=64, max_frames=6000, sep={"mask_power": 1.0}
    ),
    "big64_l1_1_p1": Generic(
        "big64_l1_1_p1",
        k_speech=64,
        k_noise=64,
        max_frames=6000,
        sep={"mask_power": 1.0, "l1": 1.0},
    ),
    "big64_free2_p1": Generic(
        "big64_free2_p1",
        k_speech=64,
        k_noise=64,
        max_frames=6000,
        sep={"mask_power": 1.0, "free_components": 2},
    ),
    "s64n128_p1": Generic(
        "s64n128_p1", k_speech=64, k_noise=128, max_frames=6000, sep={"mask_power": 1.0}
    ),
    "nobabble_free2n_p1": Generic(
        "nobabble_free2n_p1",
        exclude=("babble", "music"),
        sep={"free_components": 2, "mask_power": 1.0, "free_source": "noise"},
    ),
    "s64n32_free2n_p1": Generic(
        "s64n32_free2n_p1",
        k_speech=64,
        k_noise=32,
        max_frames=6000,
        sep={"free_components": 2, "mask_power": 1.0, "free_source": "noise"},
    ),
    # session 3 (below): the corpus without babble and music noises, free noise bases
    # shorter analysis windows: harmonics less resolved, so a pooled dictionary depends less on
    # the speakers' pitch
    **{
        f"nb_n{n}c{c}": _nobabble(f"nb_n{n}c{c}", n_fft=n, context=c, max_frames=f)
        for n, c, f in (
            (1024, 5, 6000),
            (1024, 3, 6000),
            (512, 5, 8000),
            (512, 9, 8000),
            (2048, 3, 4000),
        )
    },
    # more training frames / sparse training for the pooled dictionaries
    "nb_f16k": _nobabble("nb_f16k", max_frames=16000),
    "nb_l1t": _nobabble("nb_l1t", l1_train=0.5),
    # the tracked gain (nmfsep.tracking): the decision-directed gain against the NMF noise
    # estimate blended with minimum statistics
    "nobabble_free2n_p1_tracked": _nobabble("nobabble_free2n_p1_tracked", gain="tracked"),
    "nb_f16k_tracked": _nobabble("nb_f16k_tracked", gain="tracked", max_frames=16000),
    # 3 free noise bases: with the tracked gain guarding the high-SNR case, one more adapts
    # better (the blend "local" is the tracker's default)
    "nobabble_free3n_p1_tracked": _nobabble("nobabble_free3n_p1_tracked", free=3, gain="tracked"),
    # a larger speech dictionary / noise bank with the tracked gain
    "nb_s64_free3n_tracked": _nobabble(
        "nb_s64_free3n_tracked", free=3, gain="tracked", k_speech=64, max_frames=6000
    ),
    "nb_n64_free3n_tracked": _nobabble(
        "nb_n64_free3n_tracked", free=3, gain="tracked", k_noise=64, max_frames=6000
    ),
    # the 64-basis noise bank with 2 free bases (tracker blend midpoint 3.5 dB)
    "nb_n64_free2n_tracked": _nobabble(
        "nb_n64_free2n_tracked", gain="tracked", k_noise=64, max_frames=6000
    ),
    # shipped (session 4): the same model, activations on every bin (not the 256 analysis
    # bands) with 7 iterations instead of 20: +0.2 dB on the folds, +2.6 dB on the dev set,
    # for 1.25-1.3x the CPU of the step before (same train key: the same bases)
    "nb_n64_free2n_tracked_bins7": _bins7("nb_n64_free2n_tracked_bins7", k_noise=64),
    # session 4: dictionaries sized again for the every-bin separation
    **{
        name: _bins7(name, **train)
        for name, train in (
            ("nb_s64_n64_bins7", dict(k_speech=64, k_noise=64)),
            ("nb_s48_n64_bins7", dict(k_speech=48, k_noise=64)),
            ("nb_s24_n64_bins7", dict(k_speech=24, k_noise=64)),
            ("nb_s16_n64_bins7", dict(k_speech=16, k_noise=64)),
            ("nb_n96_bins7", dict(k_noise=96)),
            ("nb_n64_f12k_bins7", dict(k_noise=64, max_frames=12000)),
        )
    },
    # music kept in the noise bank (babble still out), separated like the shipped recipe
    "nobabble_music_n64_bins7": Generic(
        "nobabble_music_n64_bins7",
        k_noise=64,
        max_frames=6000,
        exclude=("babble",),
        sep=dict(_bins7("sep").sep),
    ),
    # session 6: the session-4 model plus a learned mask refiner (nmfsep.refine), weight 0.5,
    # trained on 2000 mixtures with 256 + 256 hidden units
    "nb_n64_bins7_refine": _refined("nb_n64_bins7_refine"),
    # shipped (session 6): a larger refiner, 3000 mixtures and 512 + 512 hidden units
    "nb_n64_bins7_refine_big": _refined(
        "nb_n64_bins7_refine_big", refine_mixtures=3000, refine_hidden=(512, 512)
    ),
    # session 7: more mixtures and a wider context (±4 frames, ±128 ms)
    "nb_n64_bins7_refine_c4": _refined(
        "nb_n64_bins7_refine_c4",
        refine_mixtures=4000,
        refine_hidden=(512, 512),
        refine_context=4,
    ),
}
# session 12: the built-in path blended with the guided cluster estimate of the same mixture
# (separate --cluster-blend W; since session 13 inside each block, nmfsep.blend): same models
# (same train key)
for _name in ("nb_n64_bins7_refine_big", "nb_n64_free2n_tracked_bins7"):
    for _w in (0.3, 0.4, 0.5):
        _r = RECIPES[_name]
        _blend = f"{_name}_blend{int(_w * 10)}"
        RECIPES[_blend] = dataclasses.replace(_r, name=_blend, sep={**_r.sep, "cluster_blend": _w})
# session 14: and the stationary-noise expert (separate --stationary-blend W, nmfsep.stationary;
# the gate chosen with bench/stationary.py): same models
_r = RECIPES["nb_n64_bins7_refine_big_blend4"]
RECIPES["nb_n64_bins7_refine_big_blend4_stat7"] = dataclasses.replace(
    _r, name="nb_n64_bins7_refine_big_blend4_stat7", sep={**_r.sep, "stationary_blend": 0.7}
)
# session 14, with the expert: the cluster blend at 0.5, and 3 free noise bases
for _name, _extra in (
    ("nb_n64_bins7_refine_big_blend5_stat7", {"cluster_blend": 0.5}),
    ("nb_n64_bins7_refine_big_blend5_stat7_free3", {"cluster_blend": 0.5, "free_components": 3}),
):
    _r = RECIPES["nb_n64_bins7_refine_big_blend4_stat7"]
    RECIPES[_name] = dataclasses.replace(_r, name=_name, sep={**_r.sep, **_extra})
# session 15: every frame at unit mean with the free bases too (frame_balance 1), an L1 penalty
# of 0.75 on the activations and 4 free noise bases (the expert's gate re-tuned with them:
# nmfsep.defaults.STATIONARY_FULL_DB / _WIDTH_DB 0 / 5 dB, was +0.5 / 4)
_r = RECIPES["nb_n64_bins7_refine_big_blend5_stat7_free3"]
_name = "nb_n64_bins7_refine_big_blend5_stat7_free4_fb1_l1"
RECIPES[_name] = dataclasses.replace(
    _r, name=_name, sep={**_r.sep, "free_components": 4, "frame_balance": 1.0, "l1": 0.75}
)
# shipped (session 15): the session-6 model and settings with the cluster blend at 0.5 (three
# band sets, nmfsep.defaults.CLUSTER_BLEND_BANDS), the stationary expert at 0.7, 4 free noise
# bases, every frame at unit mean and L1 0.75
SHIPPED = "nb_n64_bins7_refine_big_blend5_stat7_free4_fb1_l1"
