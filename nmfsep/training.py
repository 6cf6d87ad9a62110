"""Training: learn a dictionary of spectral bases for each source from clean examples.

:func:`train_model` works on arrays; :func:`train_from_files` reads each source's files
(bounded: at most :data:`~nmfsep.defaults.TRAIN_SECONDS` per source) and calls it. Memory is
bounded by a seeded sample of at most ``max_frames`` audible frames per source, spread over the
examples in proportion to their length, whatever the amount of audio.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from nmfsep import defaults, hpss, limits
from nmfsep.engine import default_stft, safe_gain
from nmfsep.errors import AudioError, ParameterError
from nmfsep.frames import stack_frames, unstack_frames
from nmfsep.model import NMFModel, trained_refiner
from nmfsep.nmf import fit_nmf
from nmfsep.options import TrainOptions, options_from
from nmfsep.spectral import STFTConfig, stft
from nmfsep.validation import check_audio

__all__ = ["ProgressCallback", "discriminative_bases", "train_from_files", "train_model"]

ProgressCallback = Callable[[str, int, float], None]
"""``callback(source, n_iter, loss)``: progress of the NMF iterations of one source."""


def _audible_frames(V: np.ndarray) -> np.ndarray:
    """Indices of the frames within :data:`~nmfsep.defaults.SILENCE_DB` of the loudest one."""
    energy = V.sum(axis=0)
    peak = float(energy.max(initial=0.0))
    if peak <= 0.0:
        return np.zeros(0, dtype=np.int64)
    return np.flatnonzero(energy > peak * 10.0 ** (-defaults.SILENCE_DB / 20.0))


def _unit_mean(V: np.ndarray) -> np.ndarray:
    mean = float(V.mean(dtype=np.float64)) if V.size else 0.0
    return V if mean <= 0.0 else V * np.float32(1.0 / mean)


def _exemplars(V: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Up to ``n`` columns of the training patches ``V`` (a seeded sample, in time order), each
    scaled to unit Euclidean norm as the learned bases are: exemplar bases (Gemmeke, Virtanen &
    Hurmalainen, IEEE TASLP 19(7), 2011). They keep the detail (pitch, formant transitions,
    the noise's own events) that a few learned bases average away; measured on the folds of
    bench/generalise.py (bench/README.md, "Exemplar bases")."""
    norms = np.linalg.norm(V, axis=0)
    keep = np.flatnonzero(norms > 0)
    if keep.size > n:
        keep = np.sort(rng.choice(keep, size=n, replace=False))
    return (V[:, keep] / norms[keep]).astype(np.float32)


def train_config(sr: int, options: TrainOptions) -> STFTConfig:
    """The STFT of a model trained at ``sr`` with ``options`` (``n_fft``/``hop_length`` or the
    default window)."""
    if options.n_fft is None and options.hop_length is None:
        return default_stft(sr)
    n_fft = options.n_fft or default_stft(sr).n_fft
    return STFTConfig(n_fft=n_fft, hop_length=options.hop_length or n_fft // 4)


def frame_budget(config: STFTConfig, options: TrainOptions) -> int:
    """Training frames per source at most: ``options.max_frames`` when given, else
    :data:`~nmfsep.defaults.TRAIN_FRAMES`, fewer when that many stacked frames would take more
    than :data:`~nmfsep.defaults.TRAIN_MEMORY` bytes, and never fewer than
    :data:`~nmfsep.defaults.TRAIN_FRAMES_MIN`."""
    if options.max_frames is not None:
        return int(options.max_frames)
    frame_bytes = 4 * (config.n_fft // 2 + 1) * int(options.context)
    fit = defaults.TRAIN_MEMORY // frame_bytes
    return max(defaults.TRAIN_FRAMES_MIN, min(defaults.TRAIN_FRAMES, fit))


def resolve_refiner(names: Sequence[str], refiner: str | None) -> str | None:
    """The source the trained-path refiner goes to: ``refiner`` itself, or for ``"auto"`` the
    one source whose name has a word of :data:`~nmfsep.defaults.REFINER_SPEECH_WORDS` (words:
    runs of letters and digits, any case), when there are two sources or more; else None."""
    if refiner != defaults.REFINER_AUTO:
        return refiner
    if len(names) < 2:
        return None
    words = set(defaults.REFINER_SPEECH_WORDS)
    speech = [n for n in names if words & set(re.split(r"[^0-9a-z]+", n.lower()))]
    return speech[0] if len(speech) == 1 else None


def check_refiner_source(names: Sequence[str], refiner: str) -> None:
    """Raise :class:`ParameterError` unless ``refiner`` names one of two sources or more."""
    if refiner not in names:
        raise ParameterError(f"refiner: no source named {refiner!r} (sources: {', '.join(names)})")
    if len(names) < 2:
        raise ParameterError("refiner: needs two sources or more (speech and the rest)")


def train_model(
    sources: Mapping[str, Sequence[np.ndarray]],
    *,
    sr: int,
    options: TrainOptions | None = None,
    stft_config: STFTConfig | None = None,
    metadata: Mapping[str, Any] | None = None,
    callback: ProgressCallback | None = None,
    **overrides: Any,
) -> NMFModel:
    """Learn a dictionary of spectral bases for each source from clean examples.

    Parameters
    ----------
    sources : mapping of str to sequence of np.ndarray, each shape (n_channels, n_samples)
        Clean examples of each source (or one array per source), all at rate ``sr`` (channels
        are averaged). Order is kept in the model.
    sr : int
        Sample rate of the examples, and of the model.
    options : TrainOptions, optional
        Or its fields as keyword arguments (``n_components``, ``beta``, ``l1``, ``l2``,
        ``context``, ``max_iter``, ``tol``, ``max_frames``, ``seed``).
    stft_config : STFTConfig, optional
        Overrides the STFT of ``options`` (any window).
    metadata : mapping, optional
        Extra JSON-able metadata stored in the model (training files, credits, ...).
    callback : callable, optional
        ``callback(source_name, n_iter, loss)`` at each convergence check.

    Returns
    -------
    NMFModel
    """
    o = options_from(TrainOptions, options, overrides)
    sr = limits.check_array_rate(sr)
    if not sources:
        raise ParameterError("at least one source is needed to train a model")
    # one array is one example, not a sequence of them (its rows)
    sources = {k: [v] if isinstance(v, np.ndarray) else v for k, v in sources.items()}
    shipped = None
    refined = resolve_refiner(list(sources), o.refiner)
    if refined is not None:
        check_refiner_source(list(sources), refined)
        # the refined source comes first in the model (the engine refines the first mask)
        sources = {refined: sources[refined], **sources}
        shipped = trained_refiner()  # read first: a broken installation fails before the work
    config = stft_config or train_config(int(sr), o)
    max_frames = frame_budget(config, o)
    rng = np.random.default_rng(o.seed)
    # a stream of its own, so that the learned bases are the same with and without exemplars
    ex_rng = np.random.default_rng(None if o.seed is None else [o.seed, 1])
    bases: dict[str, np.ndarray] = {}
    info: dict[str, Any] = {"sources": {}}
    shares: dict[str, float] = {}
    for name, examples in sources.items():
        if not examples:
            raise ParameterError(f"source {name!r} has no training audio")
        # Each example gets a share of max_frames in proportion to its length; audible frames
        # are sampled first and only those are stacked into patches (within the example, never
        # across two), so memory is bounded by max_frames whatever the amount of audio.
        total_samples = sum(np.shape(y)[-1] for y in examples)
        patches, n_total, n_audible = [], 0, 0
        percussive = total = 0.0
        for y in examples:
            y = check_audio(y, sr)
            y = y * np.float32(safe_gain(y))
            S = np.abs(stft(y, config)).mean(axis=0, dtype=np.float32)
            n_total += S.shape[1]
            audible = _audible_frames(S)
            n_audible += audible.size
            if o.hpss_prior:
                # over the clip's audible frames (the medians need its consecutive frames)
                p, t = hpss.percussive_share(S, frames=audible)
                percussive, total = percussive + p, total + t
            budget = max(1, round(max_frames * y.shape[1] / total_samples))
            if audible.size > budget:
                audible = np.sort(rng.choice(audible, size=budget, replace=False))
            patches.append(stack_frames(S, o.context, audible))
            del S
        V = _unit_mean(np.concatenate(patches, axis=1))
        del patches
        if V.shape[1] == 0:
            # the data, not a parameter: exit 1 on the command line, as an empty file is
            raise AudioError(f"source {name!r}: the training audio is silent")
        result = fit_nmf(
            V,
            n_components=o.n_components,
            beta=o.beta,
            l1_H=o.l1,
            l2_H=o.l2,
            max_iter=o.max_iter,
            tol=o.tol,
            random_state=int(rng.integers(2**31)),
            callback=None if callback is None else _stage(callback, name),
        )
        W = result.W.astype(np.float32)
        if o.exemplars:
            W = np.hstack([W, _exemplars(V, o.exemplars, ex_rng)])
        bases[name] = W
        if o.hpss_prior:
            shares[name] = round(percussive / total, 4) if total > 0 else 0.5
        info["sources"][name] = {
            "frames_total": int(n_total),
            "frames_audible": int(n_audible),
            "frames_used": int(V.shape[1]),
            "seconds_total": round(n_total * config.hop_length / sr, 3),
            "n_iter": int(result.n_iter),
            "converged": bool(result.converged),
            "final_loss": float(result.losses[-1]) if len(result.losses) else None,
            "exemplars": int(W.shape[1] - result.W.shape[1]),
        }
    meta = dict(metadata or {})
    meta.setdefault("training", {}).update(info)
    meta["training"].update(
        {"l1": o.l1, "l2": o.l2, "max_iter": o.max_iter, "tol": o.tol, "seed": o.seed}
    )
    if o.exemplars:
        # many more bases need more activation iterations to settle (measured on the folds)
        meta["training"]["exemplars"] = o.exemplars
        meta.setdefault("separation", {})["max_iter"] = defaults.EXEMPLAR_SEPARATE_ITER
    if o.hpss_prior:
        # the shares, and the strength every separation with this model takes by default
        meta[hpss.METADATA_KEY] = {"percussive_share": shares, "kernel": hpss.KERNEL}
        meta.setdefault("separation", {})["hpss_prior"] = o.hpss_prior
    refiner = None
    if shipped is not None:
        # the shipped refiner of the trained path, for the first source (nmfsep.refine)
        refiner, rmeta = shipped
        meta["training"]["refiner"] = {
            "source": refined,
            "recipe": rmeta.get("recipe"),
            "chosen": "by name" if o.refiner == defaults.REFINER_AUTO else "given",
        }
        if "credits" in rmeta:
            meta["refiner_credits"] = rmeta["credits"]
        meta.setdefault("separation", {})["refine"] = defaults.TRAINED_REFINE
    model = NMFModel(
        bases=bases,
        sr=int(sr),
        stft=config,
        beta=o.beta,
        metadata=meta,
        context=o.context,
        refiner=refiner,
    )
    if not o.discriminative:
        return model
    if len(sources) < 2:
        raise ParameterError("discriminative training needs two sources or more")
    recon, dinfo = discriminative_bases(model, sources, seed=int(rng.integers(2**31)))
    meta["discriminative"] = True
    meta["training"]["discriminative"] = dinfo
    return NMFModel(
        bases=bases,
        sr=int(sr),
        stft=config,
        beta=o.beta,
        metadata=meta,
        context=o.context,
        recon=recon,
        refiner=refiner,
    )


def _stage(callback: ProgressCallback, name: str) -> Callable[[int, float], None]:
    return lambda n_iter, loss: callback(name, n_iter, loss)


def train_from_files(
    sources: Mapping[str, Sequence[Path]],
    *,
    sr: int | None = None,
    options: TrainOptions | None = None,
    progress: Callable[[str], None] | None = None,
    warn: Callable[[str], None] | None = None,
    callback: ProgressCallback | None = None,
) -> NMFModel:
    """Read each source's files (resampled to ``sr``) and train a model on them.

    ``sr`` defaults to the first file's rate. A source with more than
    :data:`~nmfsep.defaults.TRAIN_SECONDS` of audio is read as the same share of each file
    (from its start). ``progress(message)`` receives one line per step, ``warn(message)``
    what the user should know about the model (too little audio for its bases); without
    ``warn`` those go to ``progress`` as ``"warning: ..."``.
    """
    from nmfsep import __version__
    from nmfsep.audio import audio_info, load_audio

    o = options or TrainOptions()
    say = progress or (lambda message: None)
    caution = warn or (lambda message: say(f"warning: {message}"))
    first = next(iter(sources.values()))[0]
    rate = int(sr or audio_info(first).sr)
    audio: dict[str, list[Any]] = {}
    files_meta: dict[str, list[dict[str, Any]]] = {}
    for name, files in sources.items():
        durations = [audio_info(f).duration for f in files]
        total = sum(durations)
        share = min(1.0, defaults.TRAIN_SECONDS / total) if total > 0 else 1.0
        audio[name] = []
        files_meta[name] = []
        for f, seconds in zip(files, durations, strict=True):
            y, _ = load_audio(f, sr=rate, duration=seconds * share if share < 1.0 else None)
            audio[name].append(y)
            files_meta[name].append({"file": Path(f).name, "seconds": round(seconds, 3)})
        if not any(y.any() for y in audio[name]):  # named here, where the files are known
            raise AudioError(
                f"source {name!r}: the training audio is silent",
                path=files[0] if len(files) == 1 else None,
            )
        note = f" (reading {share:.0%} of it)" if share < 1.0 else ""
        say(f"{name}: {len(files)} file(s), {total:.1f} s of audio{note}")
    model = train_model(
        audio,
        sr=rate,
        options=o,
        metadata={"nmfsep_version": __version__, "training": {"files": files_meta}},
        callback=callback,
    )
    for name, stats in model.metadata["training"]["sources"].items():
        subset = (
            f", a random {stats['frames_used']} of {stats['frames_audible']} audible frames"
            if stats["frames_used"] < stats["frames_audible"]
            else ""
        )
        say(
            f"{name}: {model.n_components[name]} bases, {stats['n_iter']} iterations"
            f"{'' if stats['converged'] else ' (not converged)'}{subset}"
        )
        learned = model.n_components[name] - stats["exemplars"]
        if stats["frames_used"] < learned:
            caution(
                f"{name}: only {stats['frames_used']} audible frame(s) for {learned} bases: "
                "the model cannot describe this source well; give it a few seconds of audio"
            )
        if o.exemplars and stats["exemplars"] < o.exemplars:
            caution(
                f"{name}: {stats['exemplars']} exemplar(s), not {o.exemplars}: its audio has "
                "no more patches"
            )
    return model


# ------------------------------------------------------------------------------ discriminative


def _unstack_adjoint(A: np.ndarray, context: int) -> np.ndarray:
    """Adjoint of :func:`nmfsep.frames.unstack_frames` (a linear map): (n_freq, T) ->
    (context * n_freq, T)."""
    if context == 1:
        return A
    F, T = A.shape
    half = context // 2
    count = np.zeros(T, dtype=A.dtype)
    for j in range(context):
        shift = j - half
        lo, hi = max(0, -shift), min(T, T - shift)
        if lo < hi:
            count[lo + shift : hi + shift] += 1
    scaled = A / count
    out = np.zeros((context, F, T), dtype=A.dtype)
    for j in range(context):
        shift = j - half
        lo, hi = max(0, -shift), min(T, T - shift)
        if lo < hi:
            out[j, :, lo:hi] = scaled[:, lo + shift : hi + shift]
    return out.reshape(context * F, T)


def _synthetic_mixtures(
    clips: list[list[np.ndarray]],
    config: STFTConfig,
    *,
    n_frames: int,
    segment: int,
    snr_range: tuple[float, float],
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Magnitudes of seeded synthetic mixtures of the clips and of their sources.

    Each mixture is ``segment`` frames of every source from a random clip (chosen in proportion
    to its length) at a random offset, the first source at a random SNR (uniform in
    ``snr_range``) against each other one, and a random overall gain (-20..0 dB).

    Returns
    -------
    V : (n_freq, T) mixture magnitudes; S : (n_sources, n_freq, T) source magnitudes;
    group : (T,) index of the mixture of every frame
    """
    hop = config.hop_length
    n_samples = (segment - 1) * hop
    n_mix = max(2, -(-n_frames // segment))
    Vs, Ss, groups = [], [], []
    for g in range(n_mix):
        segs = []
        for examples in clips:
            lengths = np.array([y.size for y in examples], dtype=np.float64)
            for _attempt in range(4):  # a segment that is not (almost) silent
                y = examples[int(rng.choice(len(examples), p=lengths / lengths.sum()))]
                if y.size <= n_samples:
                    y = np.tile(y, n_samples // max(1, y.size) + 2)
                start = int(rng.integers(0, y.size - n_samples + 1))
                seg = y[start : start + n_samples].astype(np.float64)
                if np.mean(seg**2) > 1e-6 * np.mean(y**2):
                    break
            segs.append(seg)
        energy = [float(np.sum(x**2)) or 1.0 for x in segs]
        scaled = [segs[0] / np.sqrt(energy[0])]
        for x, e in zip(segs[1:], energy[1:], strict=True):
            snr = rng.uniform(*snr_range)
            scaled.append(x / np.sqrt(e * 10.0 ** (snr / 10.0)))
        gain = 10.0 ** (rng.uniform(-20.0, 0.0) / 20.0)
        total = sum(scaled)
        peak = float(np.max(np.abs(total))) or 1.0
        X = stft(np.stack(scaled).astype(np.float32) * np.float32(gain * 0.9 / peak), config)
        V = np.abs(X.sum(axis=0))
        keep = V.mean(axis=0) > 0
        Vs.append(V[:, keep])
        Ss.append(np.abs(X)[:, :, keep])
        groups.append(np.full(int(keep.sum()), g))
    return (
        np.concatenate(Vs, axis=1).astype(np.float32),
        np.concatenate(Ss, axis=2).astype(np.float32),
        np.concatenate(groups),
    )


def _dnmf_loss(S: np.ndarray, Shat: np.ndarray, beta: float) -> float:
    from nmfsep.nmf import beta_divergence

    return float(sum(beta_divergence(S[i], Shat[i], beta) for i in range(S.shape[0])))


def _fit_recon(
    V: np.ndarray,
    S: np.ndarray,
    H: np.ndarray,
    W: np.ndarray,
    cols_of: list[np.ndarray],
    *,
    context: int,
    power: float,
    beta: float,
    wanted: list[int],
    held: np.ndarray,
    n_iter: int,
    extra: np.ndarray | None = None,
) -> tuple[np.ndarray, tuple[float, float, float, int, int]]:
    """Multiplicative updates of the reconstruction bases ``R`` (from ``W``) on
    ``sum_{i in wanted} D_beta(S_i | M_i(R) V)`` with ``H`` fixed; ``extra`` (n_sources, n_freq,
    T), if given, is added to every source's un-stacked part (e.g. free bases learned on each
    mixture). Columns ``held`` (T,) score the held-out objective; the best ``R`` is returned with
    (held-out start, best held-out, train start, best iteration, iterations run)."""
    from nmfsep.masks import wiener_masks

    eps = np.float32(1e-12)
    R = W.copy()
    names = range(len(cols_of))

    def forward(R: np.ndarray, sel: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        Hs = H[:, sel]
        lam = np.stack([unstack_frames(R[:, k] @ Hs[k], context) for k in cols_of]) + eps
        if extra is not None:
            lam += extra[:, :, sel]
        masks = wiener_masks(lam, power=power)
        return lam, masks, masks * V[:, sel] + eps

    def loss(R: np.ndarray, sel: np.ndarray) -> float:
        return _dnmf_loss(S[wanted][:, :, sel] + eps, forward(R, sel)[2][wanted], beta)

    train_cols = ~held
    best_R, best = R.copy(), loss(R, held)
    first_held, first_train = best, loss(R, train_cols)
    best_iter, n_done = 0, 0
    Vt, St, Ht = V[:, train_cols], S[:, :, train_cols], H[:, train_cols]
    unwanted = [i for i in names if i not in wanted]
    for it in range(1, n_iter + 1):
        lam, masks, Shat = forward(R, train_cols)
        # dL/dShat_i = Shat^(beta-2) (Shat - S); split in positive (A) and negative (B) parts
        A = Vt * Shat ** np.float32(beta - 1.0)
        B = Vt * St * Shat ** np.float32(beta - 2.0)
        A[unwanted] = 0.0
        B[unwanted] = 0.0
        mA, mB = (masks * A).sum(axis=0), (masks * B).sum(axis=0)
        for k, cols in enumerate(cols_of):
            f = masks[k] / lam[k]  # d mask / d lambda_k, up to the power p (common to both)
            num = _unstack_adjoint(f * (B[k] + mA), context) @ Ht[cols].T
            den = _unstack_adjoint(f * (A[k] + mB), context) @ Ht[cols].T
            R[:, cols] *= (num + eps) / (den + eps)
        value = loss(R, held)
        n_done = it
        if value < best:
            best, best_R, best_iter = value, R.copy(), it
        elif it - best_iter >= 8:  # held-out objective no longer improving
            break
    return best_R, (first_held, best, first_train, best_iter, n_done)


def discriminative_bases(
    model: NMFModel,
    sources: Mapping[str, Sequence[np.ndarray]],
    *,
    separate_options: Any = None,
    n_frames: int = defaults.DISCRIMINATIVE_FRAMES,
    n_iter: int = defaults.DISCRIMINATIVE_ITER,
    segment: int = defaults.DISCRIMINATIVE_SEGMENT,
    snr_range: tuple[float, float] = defaults.DISCRIMINATIVE_SNR,
    beta: float = defaults.DISCRIMINATIVE_BETA,
    targets: Sequence[int] | None = None,
    seed: int | None = 0,
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Reconstruction bases for ``model`` learned discriminatively (Weninger, Le Roux, Hershey
    & Watanabe, "Discriminative NMF and its application to single-channel source separation",
    Interspeech 2014).

    Synthetic mixtures of the clean ``sources`` (the training clips, at ``model.sr``) are
    separated exactly as :func:`nmfsep.separation.separate` would with ``separate_options``
    (default: :class:`~nmfsep.options.SeparateOptions` defaults): the activations ``H`` are
    inferred by the engine's own :func:`~nmfsep.engine.fit_masks` with the model's bases fixed
    (per-frame unit mean, L1 penalty, iterations, analysis bands). With ``H`` fixed, the
    reconstruction bases ``R`` (starting from the model's bases) are then updated by
    multiplicative updates on ``sum_i D_beta(S_i | M_i(R) * V)``, the beta-divergence between
    every source's spectrum ``S_i`` and its Wiener-masked mixture (the engine's mask power). A
    fifth of the mixtures is held out; the ``R`` of the best held-out objective is returned.

    Returns
    -------
    recon : dict of source name to np.ndarray (the model's shapes, float32)
    info : dict
        JSON-able record (mixtures, frames, iterations, objective before and after, CPU s).
    """
    import time

    from nmfsep.engine import SeparationPlan, fit_masks
    from nmfsep.options import SeparateOptions

    t0 = time.process_time()
    # supervised: no free bases unless asked for (a model may recommend some)
    opts = separate_options if separate_options is not None else SeparateOptions(free_components=0)
    if opts.free_components:
        raise ParameterError("discriminative training is for supervised separation (no free bases)")
    names = model.source_names
    if list(sources) != names:
        raise ParameterError("the training sources must be the model's, in its order")
    rng = np.random.default_rng(seed)
    clips = []
    for name in names:
        ys = []
        for y in sources[name]:
            y = check_audio(y, model.sr)
            ys.append(np.asarray(y, dtype=np.float32).mean(axis=0))
        clips.append(ys)
    V, S, group = _synthetic_mixtures(
        clips, model.stft, n_frames=n_frames, segment=segment, snr_range=snr_range, rng=rng
    )
    plan = SeparationPlan.create(model, sr=model.sr, options=opts)
    _, result = fit_masks(plan, V, plan.initial_free_bases())  # the separation's own inference
    H = np.ascontiguousarray(result.H, dtype=np.float32)
    # every mixture at unit mean magnitude (the objective weighs mixtures alike; masks and the
    # inferred activations do not depend on the level)
    scale = np.ones(V.shape[1], dtype=np.float32)
    for g in np.unique(group):
        cols = group == g
        scale[cols] = 1.0 / max(float(V[:, cols].mean()), 1e-12)
    V *= scale
    S *= scale
    held = group >= group.max() - max(1, (group.max() + 1) // 5) + 1
    labels = plan.labels
    c, p = plan.context, float(plan.options.mask_power or 0.0)
    cols_of = [labels == i for i in range(len(names))]
    wanted = list(range(len(names))) if targets is None else sorted(set(targets))
    best_R, fit = _fit_recon(
        V, S, H, plan.W, cols_of, context=c, power=p, beta=beta, wanted=wanted, held=held,
        n_iter=n_iter,
    )  # fmt: skip
    first_held, best, first_train, best_iter, n_done = fit
    recon = {
        name: np.ascontiguousarray(best_R[:, cols], dtype=np.float32)
        for name, cols in zip(names, cols_of, strict=True)
    }
    info = {
        "mixtures": int(group.max() + 1),
        "frames": int(V.shape[1]),
        "held_out_frames": int(held.sum()),
        "snr_range_db": list(snr_range),
        "beta": beta,
        "mask_power": p,
        "iterations": n_done,
        "best_iteration": best_iter,
        "objective_held_out": [round(first_held, 4), round(best, 4)],
        "objective_train_start": round(first_train, 4),
        "cpu_seconds": round(time.process_time() - t0, 2),
    }
    return recon, info
