"""Pipelines: train a model from clean examples, separate a mixture, cluster without training.

Everything here works on arrays (audio as ``(n_channels, n_samples)`` float32); reading and writing
files is the job of :mod:`nmfsep.audio` and :mod:`nmfsep.batch`.

Sample rates
------------
A model's bases live on the frequency grid of the rate it was trained at. A mixture at another
rate is *not* resampled: its STFT is taken with the same frame duration (``n_fft`` and
``hop_length`` scaled by the rate ratio) and the bases are interpolated onto its frequency bins.
Bins above the model's Nyquist frequency get the masks of the highest modelled bin. Outputs
therefore keep the input's rate, channels and length exactly, and the sources still sum to the
mixture.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from nmfsep.errors import ParameterError
from nmfsep.masks import apply_masks, wiener_masks
from nmfsep.model import NMFModel
from nmfsep.nmf import fit_nmf
from nmfsep.spectral import STFTConfig, istft, stft

# Defaults chosen by measurement (bench/quality.py; table in bench/README.md).
DEFAULT_COMPONENTS = 32
DEFAULT_BETA = 1.0
DEFAULT_MASK_POWER = 2.0
DEFAULT_TRAIN_ITER = 200
DEFAULT_SEPARATE_ITER = 20
DEFAULT_TOL = 1e-4
DEFAULT_WINDOW_SECONDS = 0.128
#: L1 penalty on the activations for supervised separation (each frame at unit mean level):
#: sparse activations make each source's part explain less of the other's energy. With free
#: bases (semi-supervised) the default is 0: there the penalty pushes speech into the free
#: bases (measured: bench/README.md).
DEFAULT_SEPARATE_L1 = 2.0
#: Window of ``cluster``: shorter than for trained models, because the bases are learned on the
#: (short) mixture itself and more frames make a better factorisation (measured: 64 ms gave
#: 2.5 dB more than 128 ms on the speech cases, bench/README.md).
CLUSTER_WINDOW_SECONDS = 0.064
#: Frames per basis: each basis is a patch of this many consecutive frames (see stack_frames).
DEFAULT_CONTEXT = 5
#: Training frames kept per source at most (a seeded random subset beyond that), which bounds
#: training memory to about ``context * n_freq * MAX_TRAIN_FRAMES * 4`` bytes per source
#: (20 000 frames: about 10 minutes of audio at the default hop; 200 MB at 16 kHz).
MAX_TRAIN_FRAMES = 20_000
#: Frames quieter than this (dB below the loudest frame) are not used for training: they carry
#: no spectral shape, only cost.
SILENCE_DB = 60.0

ProgressCallback = Callable[[str, int, float], None]
"""``callback(stage, n_iter, loss)``: progress of the NMF iterations of one stage."""


@dataclass
class SeparationResult:
    """The estimated sources of one mixture.

    Attributes
    ----------
    sources : dict of str to np.ndarray, each shape (n_channels, n_samples)
        One signal per source, at the mixture's rate and length; they sum to the mixture.
    sr : int
        Sample rate of the signals.
    masks : dict of str to np.ndarray, each shape (n_freq, n_frames)
        The soft masks used (the same for every channel).
    n_iter : int
        NMF iterations run.
    converged : bool
        Whether the NMF stopped on its tolerance rather than on ``max_iter``.
    settings : dict
        The settings used (STFT, beta, components, mask power, ...), JSON-able.
    """

    sources: dict[str, np.ndarray]
    sr: int
    masks: dict[str, np.ndarray]
    n_iter: int
    converged: bool
    settings: dict[str, Any] = field(default_factory=dict)


def default_stft(sr: int, *, window_seconds: float = DEFAULT_WINDOW_SECONDS) -> STFTConfig:
    """STFT settings for a rate: a window of about 128 ms (a power of two) and 75 % overlap.

    Long windows resolve the harmonics of speech and music finely, which is what NMF bases
    tell sources apart by; measured best for separation (bench/README.md). 16 kHz gives
    n_fft 2048 / hop 512, 44.1 kHz gives 4096 / 1024.
    """
    n_fft = int(2 ** round(np.log2(max(window_seconds * sr, 16))))
    return STFTConfig(n_fft=n_fft, hop_length=n_fft // 4)


def stft_for_rate(config: STFTConfig, model_sr: int, sr: int) -> STFTConfig:
    """STFT settings at rate ``sr`` whose frames last as long as ``config``'s at ``model_sr``."""
    if sr == model_sr:
        return config
    ratio = sr / model_sr
    n_fft = max(16, 2 * round(config.n_fft * ratio / 2))
    win = min(n_fft, max(1, round(int(config.win_length or config.n_fft) * ratio)))
    hop = min(win, max(1, round(config.hop_length * ratio)))
    return STFTConfig(n_fft=n_fft, hop_length=hop, win_length=win, window=config.window)


def map_bases(
    W: np.ndarray,
    model_sr: int,
    model_config: STFTConfig,
    sr: int,
    config: STFTConfig,
    *,
    context: int = 1,
) -> tuple[np.ndarray, int]:
    """Interpolate bases from the model's frequency grid onto another one.

    Parameters
    ----------
    W : np.ndarray, shape (context * n_freq_model, K)
    model_sr, model_config : rate and STFT of the model
    sr, config : rate and STFT of the target grid
    context : int
        Frames stacked in each basis (each frame's block is mapped on its own).

    Returns
    -------
    W_mapped : np.ndarray, shape (context * n_modelled, K)
        Bases on the target bins up to the model's Nyquist frequency.
    n_modelled : int
        How many of the target's ``config.n_freq`` bins the model covers.
    """
    if sr == model_sr and config == model_config:
        return W, W.shape[0] // context
    f_model = model_config.frequencies(model_sr)
    f_target = config.frequencies(sr)
    n_modelled = int(np.searchsorted(f_target, f_model[-1], side="right"))
    n_modelled = max(1, min(n_modelled, config.n_freq))
    blocks = W.reshape(context, f_model.size, W.shape[1])
    mapped = np.empty((context, n_modelled, W.shape[1]), dtype=W.dtype)
    for j in range(context):
        for k in range(W.shape[1]):
            mapped[j, :, k] = np.interp(f_target[:n_modelled], f_model, blocks[j, :, k])
    return mapped.reshape(context * n_modelled, W.shape[1]), n_modelled


def output_sources(model: NMFModel, free_components: int = 0) -> list[str]:
    """Names of the sources a separation with ``model`` gives: the model's, then ``residual``
    when free bases are learned.

    Raises
    ------
    ParameterError
        Negative ``free_components``, a model source already named ``residual``, or a one-source
        model without free bases (nothing to separate).
    """
    if free_components < 0:
        raise ParameterError(f"free_components must be >= 0, got {free_components}")
    names = list(model.source_names)
    if free_components and "residual" in names:
        raise ParameterError("the model already has a source named 'residual'")
    if len(names) + (1 if free_components else 0) < 2:
        raise ParameterError(
            "a one-source model separates nothing by itself: add --free-components K "
            "to learn the rest of the mixture"
        )
    return [*names, "residual"] if free_components else names


def default_l1(free_components: int) -> float:
    """The default ``l1`` of a separation: :data:`DEFAULT_SEPARATE_L1`, or 0 with free bases."""
    return 0.0 if free_components else DEFAULT_SEPARATE_L1


def _unit_mean(V: np.ndarray, *, per_frame: bool = False) -> np.ndarray:
    """``V`` scaled to a mean of 1, as a whole or frame by frame (silent frames unchanged)."""
    if per_frame:
        mean = V.mean(axis=0, dtype=np.float64, keepdims=True)
        return (V / np.where(mean > 0.0, mean, 1.0)).astype(V.dtype, copy=False)
    mean_all = float(V.mean(dtype=np.float64)) if V.size else 0.0
    return V if mean_all <= 0.0 else V * np.float32(1.0 / mean_all)


def stack_frames(V: np.ndarray, context: int, columns: np.ndarray | None = None) -> np.ndarray:
    """Stack each frame with its neighbours: spectro-temporal patches for NMF.

    Column ``t`` of the result holds frames ``t - c//2 ... t + c//2`` of ``V`` one above the
    other (edges repeat the first / last frame). Bases learned on such patches model how a
    source's spectrum moves over ~100 ms, which separates speech from noise better than single
    spectra (the idea of convolutive NMF, Smaragdis 2004, in its cheapest, stacked form).

    Parameters
    ----------
    V : np.ndarray, shape (n_freq, n_frames)
    context : int
        Odd number of frames per patch; 1 returns ``V`` itself.
    columns : np.ndarray of int, optional
        Only these columns (a subset of frames: training on a sample).

    Returns
    -------
    np.ndarray, shape (context * n_freq, n_frames or len(columns))
    """
    F, T = V.shape
    t = np.arange(T) if columns is None else np.asarray(columns)
    if context == 1:
        return V if columns is None else V[:, t]
    half = context // 2
    out = np.empty((context, F, t.size), dtype=V.dtype)
    for j in range(context):
        np.take(V, np.clip(t + j - half, 0, T - 1), axis=1, out=out[j])
    return out.reshape(context * F, t.size)


def unstack_frames(S: np.ndarray, context: int) -> np.ndarray:
    """Inverse of :func:`stack_frames` for model outputs: average each frame's estimates.

    Frame ``t`` is estimated by block ``j`` of column ``t - j + c//2`` for every ``j`` where
    that column exists; the estimates are averaged.

    Parameters
    ----------
    S : np.ndarray, shape (context * n_freq, n_frames)

    Returns
    -------
    np.ndarray, shape (n_freq, n_frames)
    """
    if context == 1:
        return S
    F, T = S.shape[0] // context, S.shape[1]
    half = context // 2
    blocks = S.reshape(context, F, T)
    acc = np.zeros((F, T), dtype=S.dtype)
    count = np.zeros(T, dtype=S.dtype)
    for j in range(context):
        shift = j - half  # column c models frame c + shift
        lo, hi = max(0, -shift), min(T, T - shift)
        if lo < hi:
            acc[:, lo + shift : hi + shift] += blocks[j, :, lo:hi]
            count[lo + shift : hi + shift] += 1
    acc /= count
    return acc


def masks_from_magnitude(
    V: np.ndarray,
    W: np.ndarray,
    labels: np.ndarray,
    n_sources: int,
    *,
    n_freq: int,
    context: int = 1,
    fixed_W: np.ndarray | bool = True,
    beta: float = DEFAULT_BETA,
    l1: float = 0.0,
    mask_power: float = DEFAULT_MASK_POWER,
    max_iter: int = DEFAULT_SEPARATE_ITER,
    tol: float = DEFAULT_TOL,
    random_state: int | None = None,
    callback: Callable[[int, float], None] | None = None,
) -> tuple[np.ndarray, Any]:
    """Soft masks of each source for a magnitude spectrogram, given (partly fixed) bases.

    Activations are fitted on the context-stacked spectrogram with ``W``'s fixed columns held,
    each source's part ``W_i H_i`` is un-stacked to one spectrum per frame, and the Wiener masks
    ``M_i = P_i^p / sum_j P_j^p`` are computed; bins above the modelled ones (a model of a lower
    rate) continue the highest modelled bin's masks.

    Parameters
    ----------
    V : np.ndarray, shape (n_modelled, n_frames)
        Magnitudes of the modelled bins.
    W : np.ndarray, shape (context * n_modelled, K)
    labels : np.ndarray of int, shape (K,)
        Source index of each basis.
    n_sources : int
    n_freq : int
        Bins of the full spectrogram the masks are for (>= n_modelled).

    Returns
    -------
    masks : np.ndarray, shape (n_sources, n_freq, n_frames)
    result : NMFResult
    """
    n_modelled = V.shape[0]
    # The masks do not depend on the level of V, but the L1 penalty does. With all bases fixed,
    # frames are independent: each is brought to unit mean, so ``l1`` asks every frame for the
    # same relative sparsity, whatever the recording's level or a frame's loudness, and the
    # result of a frame does not depend on the other frames (streamed blocks equal the whole
    # file). With learned bases the frames are coupled: the whole spectrogram is brought to
    # unit mean instead. Both keep float32 products of extreme levels finite.
    all_fixed = fixed_W is True or (
        not isinstance(fixed_W, bool) and bool(np.asarray(fixed_W, dtype=bool).all())
    )
    V = _unit_mean(V, per_frame=all_fixed)
    result = fit_nmf(
        stack_frames(V, context),
        W=W,
        fixed_W=fixed_W,
        beta=beta,
        l1_H=l1,
        max_iter=max_iter,
        tol=tol,
        random_state=random_state,
        callback=callback,
    )
    parts = np.empty((n_sources, n_modelled, V.shape[1]), dtype=result.W.dtype)
    for i in range(n_sources):
        cols = labels == i
        parts[i] = unstack_frames(result.W[:, cols] @ result.H[cols], context)
    masks = wiener_masks(parts, power=mask_power)
    if n_modelled < n_freq:
        top = masks[:, -1:, :]
        masks = np.concatenate([masks, np.repeat(top, n_freq - n_modelled, axis=1)], axis=1)
    return masks, result


def magnitude(X: np.ndarray) -> np.ndarray:
    """Channel-mean magnitude (n_freq, n_frames) of a complex STFT (n_channels, n_freq, n_frames).

    One set of activations serves every channel; each channel then gets the masks applied to
    its own complex STFT (so stereo images are kept).
    """
    return np.abs(X).mean(axis=0, dtype=np.float32)


def _check_audio(y: np.ndarray, sr: int) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim == 1:
        y = y[np.newaxis, :]
    if y.ndim != 2:
        raise ParameterError(f"audio must have shape (n_channels, n_samples), got {y.shape}")
    if not isinstance(sr, (int, np.integer)) or sr <= 0:
        raise ParameterError(f"sr must be a positive integer, got {sr!r}")
    if y.shape[1] == 0:
        raise ParameterError("audio has no samples")
    if not np.all(np.isfinite(y)):
        raise ParameterError("audio contains NaN or infinite samples")
    return y.astype(np.float32, copy=False)


#: Peak amplitudes outside this range are scaled into it before the STFT (and the estimates
#: scaled back): float32 spectra of louder float files overflow to inf, and those of quieter
#: ones sink into the epsilon floor / denormals. Separation is scale-invariant, so nothing
#: else changes.
_SAFE_PEAK = (1e-6, 1e4)


def _safe_gain(y: np.ndarray) -> float:
    """Factor that brings ``y``'s peak into :data:`_SAFE_PEAK` (1.0 when inside, or silent)."""
    peak = float(np.max(np.abs(y), initial=0.0))
    if peak == 0.0 or _SAFE_PEAK[0] <= peak <= _SAFE_PEAK[1]:
        return 1.0
    return 1.0 / peak


def _scaled(y: np.ndarray) -> np.ndarray:
    gain = _safe_gain(y)
    return y if gain == 1.0 else y * np.float32(gain)


def _unscale(estimates: np.ndarray, gain: float) -> np.ndarray:
    big = float(np.finfo(np.float32).max)
    return np.clip(estimates.astype(np.float64) / gain, -big, big).astype(np.float32)


def _progress(callback: ProgressCallback | None, stage: str):
    if callback is None:
        return None
    return lambda n_iter, loss: callback(stage, n_iter, loss)


def train_model(
    sources: Mapping[str, Sequence[np.ndarray]],
    *,
    sr: int,
    n_components: int | Mapping[str, int] = DEFAULT_COMPONENTS,
    beta: float | str = DEFAULT_BETA,
    l1: float = 0.0,
    l2: float = 0.0,
    stft_config: STFTConfig | None = None,
    context: int = DEFAULT_CONTEXT,
    max_iter: int = DEFAULT_TRAIN_ITER,
    tol: float = DEFAULT_TOL,
    max_frames: int = MAX_TRAIN_FRAMES,
    random_state: int | None = 0,
    metadata: Mapping[str, Any] | None = None,
    callback: ProgressCallback | None = None,
) -> NMFModel:
    """Learn a dictionary of spectral bases for each source from clean examples.

    Parameters
    ----------
    sources : mapping of str to sequence of np.ndarray, each shape (n_channels, n_samples)
        Clean examples of each source, all at rate ``sr``. Order is kept in the model.
    sr : int
        Sample rate of the examples, and of the model.
    n_components : int or mapping of str to int
        Bases per source.
    beta : float or str
        Beta-divergence of the fit (1 = Kullback–Leibler).
    l1, l2 : float
        Sparsity (L1) and L2 penalties on the activations during training.
    stft_config : STFTConfig, optional
        Defaults to :func:`default_stft` for ``sr``.
    context : int
        Frames per basis (odd): bases are spectro-temporal patches (:func:`stack_frames`).
    max_iter, tol : int, float
        NMF iteration cap and relative tolerance.
    max_frames : int
        Frames kept per source at most (a seeded random subset beyond that).
    random_state : int, optional
        Seed of the initialisation and of the frame subset.
    metadata : mapping, optional
        Extra JSON-able metadata stored in the model (training files, credits, ...).
    callback : callable, optional
        ``callback(source_name, n_iter, loss)`` at each convergence check.

    Returns
    -------
    NMFModel
    """
    if not sources:
        raise ParameterError("at least one source is needed to train a model")
    config = stft_config or default_stft(sr)
    if isinstance(context, bool) or not isinstance(context, (int, np.integer)) or context < 1:
        raise ParameterError(f"context must be an odd integer >= 1, got {context!r}")
    if context % 2 == 0:
        raise ParameterError(
            f"context must be odd (the patch is centred on a frame), got {context}"
        )
    counts = (
        {name: int(n_components) for name in sources}
        if isinstance(n_components, (int, np.integer))
        else {name: int(n_components[name]) for name in sources}
    )
    rng = np.random.default_rng(random_state)
    bases: dict[str, np.ndarray] = {}
    info: dict[str, Any] = {"sources": {}}
    for name, examples in sources.items():
        if not examples:
            raise ParameterError(f"source {name!r} has no training audio")
        # Each example gets a share of max_frames in proportion to its length; audible frames are
        # sampled first and only those are stacked into patches (within the example, never
        # across two), so memory is bounded by max_frames whatever the amount of audio.
        total_samples = sum(np.shape(y)[-1] for y in examples)
        patches, n_total, n_audible = [], 0, 0
        for y in examples:
            y = _check_audio(y, sr)
            S = magnitude(stft(_scaled(y), config))
            n_total += S.shape[1]
            audible = _audible_frames(S)
            n_audible += audible.size
            budget = max(1, round(max_frames * y.shape[1] / total_samples))
            if audible.size > budget:
                audible = np.sort(rng.choice(audible, size=budget, replace=False))
            patches.append(stack_frames(S, context, audible))
            del S
        V = _unit_mean(np.concatenate(patches, axis=1))
        del patches
        if V.shape[1] == 0:
            raise ParameterError(f"source {name!r}: the training audio is silent")
        k = counts[name]
        if k < 1:
            raise ParameterError(f"source {name!r}: n_components must be >= 1, got {k}")
        result = fit_nmf(
            V,
            n_components=k,
            beta=beta,
            l1_H=l1,
            l2_H=l2,
            max_iter=max_iter,
            tol=tol,
            random_state=int(rng.integers(2**31)),
            callback=_progress(callback, name),
        )
        bases[name] = result.W.astype(np.float32)
        info["sources"][name] = {
            "frames_total": int(n_total),
            "frames_audible": int(n_audible),
            "frames_used": int(V.shape[1]),
            "seconds_total": round(n_total * config.hop_length / sr, 3),
            "n_iter": int(result.n_iter),
            "converged": bool(result.converged),
            "final_loss": float(result.losses[-1]) if len(result.losses) else None,
        }
    meta = dict(metadata or {})
    meta.setdefault("training", {}).update(info)
    meta["training"].update({"l1": l1, "l2": l2, "max_iter": max_iter, "tol": tol})
    meta["training"]["random_state"] = random_state
    return NMFModel(
        bases=bases,
        sr=int(sr),
        stft=config,
        beta=float(_beta_value(beta)),
        metadata=meta,
        context=context,
    )


def _beta_value(beta: float | str) -> float:
    names = {
        "euclidean": 2.0,
        "frobenius": 2.0,
        "kullback-leibler": 1.0,
        "kl": 1.0,
        "itakura-saito": 0.0,
        "is": 0.0,
    }
    if isinstance(beta, str):
        try:
            return names[beta.lower()]
        except KeyError:
            raise ParameterError(
                f"unknown beta {beta!r}; use a number or one of {', '.join(names)}"
            ) from None
    return float(beta)


def _audible_frames(V: np.ndarray) -> np.ndarray:
    """Indices of the frames within :data:`SILENCE_DB` of the loudest one."""
    energy = V.sum(axis=0)
    peak = float(energy.max(initial=0.0))
    if peak <= 0.0:
        return np.zeros(0, dtype=np.int64)
    return np.flatnonzero(energy > peak * 10.0 ** (-SILENCE_DB / 20.0))


def separate(
    y: np.ndarray,
    sr: int,
    model: NMFModel,
    *,
    mask_power: float = DEFAULT_MASK_POWER,
    free_components: int = 0,
    beta: float | str | None = None,
    l1: float | None = None,
    max_iter: int = DEFAULT_SEPARATE_ITER,
    tol: float = DEFAULT_TOL,
    random_state: int | None = 0,
    callback: ProgressCallback | None = None,
) -> SeparationResult:
    """Separate a mixture with a trained model (supervised, or semi-supervised).

    The model's bases W are fixed, activations H are learned on the mixture's magnitude
    spectrogram, and each source gets the Wiener soft mask
    ``M_i = (W_i H_i)^p / sum_j (W_j H_j)^p`` applied to the complex mixture STFT,
    followed by the inverse STFT with overlap-add.

    Parameters
    ----------
    y : np.ndarray, shape (n_channels, n_samples) or (n_samples,)
        The mixture.
    sr : int
        Its sample rate (need not be the model's: see the module docstring).
    model : NMFModel
    mask_power : float
        ``p`` of the Wiener mask (2: power-spectrogram Wiener filter, 1: magnitude ratio).
    free_components : int
        Extra bases learned on the mixture itself (semi-supervised); their part is returned as
        the source ``"residual"``.
    beta : float or str, optional
        Divergence of the activation fit; defaults to the model's.
    l1 : float, optional
        Sparsity penalty on the activations, each frame at unit mean level (default:
        :func:`default_l1`: 2 for supervised separation, 0 with free bases).
    max_iter, tol : int, float
        NMF iteration cap and relative tolerance.
    random_state : int, optional
        Seed of the free bases' initialisation.
    callback : callable, optional
        ``callback("separate", n_iter, loss)`` at each convergence check.

    Returns
    -------
    SeparationResult
    """
    y = _check_audio(y, sr)
    l1 = default_l1(free_components) if l1 is None else l1
    gain = _safe_gain(y)
    if gain != 1.0:
        y = y * np.float32(gain)
    names = output_sources(model, free_components)
    config = stft_for_rate(model.stft, model.sr, sr)
    X = stft(y, config)
    V = magnitude(X)
    context = model.context
    W, n_modelled = map_bases(model.W, model.sr, model.stft, sr, config, context=context)
    labels = model.component_sources()
    beta_value = model.beta if beta is None else _beta_value(beta)

    fixed: np.ndarray | bool = True
    if free_components:
        rng = np.random.default_rng(random_state)
        scale = float(V[:n_modelled].mean()) + 1e-6
        W_free = rng.uniform(0.5, 1.5, size=(context * n_modelled, free_components))
        W_free = W_free.astype(np.float32)
        W_free *= scale
        W = np.concatenate([W, W_free], axis=1)
        fixed = np.arange(W.shape[1]) < labels.size
        labels = np.concatenate([labels, np.full(free_components, len(names) - 1)])

    masks, result = masks_from_magnitude(
        V[:n_modelled],
        W,
        labels,
        len(names),
        n_freq=config.n_freq,
        context=context,
        fixed_W=fixed,
        beta=beta_value,
        l1=l1,
        mask_power=mask_power,
        max_iter=max_iter,
        tol=tol,
        random_state=random_state,
        callback=_progress(callback, "separate"),
    )
    settings = {
        "sr": sr,
        "model_sr": model.sr,
        "stft": config.to_dict(),
        "beta": beta_value,
        "components": {
            **model.n_components,
            **({"residual": free_components} if free_components else {}),
        },
        "context": context,
        "mask_power": mask_power,
        "l1": l1,
        "max_iter": max_iter,
        "tol": tol,
    }
    return _masked_result(X, masks, names, config, y.shape[1], gain, sr, result, settings)


def _masked_result(
    X: np.ndarray,
    masks: np.ndarray,
    names: list[str],
    config: STFTConfig,
    length: int,
    gain: float,
    sr: int,
    nmf: Any,
    settings: dict[str, Any],
) -> SeparationResult:
    """Apply the masks to the complex mixture STFT, invert by overlap-add, undo the level
    scaling of :func:`_safe_gain`, and package the result."""
    estimates = istft(apply_masks(masks, X), config, length=length).astype(np.float32)
    if gain != 1.0:
        estimates = _unscale(estimates, gain)
    n_iter, converged = int(nmf.n_iter), bool(nmf.converged)
    return SeparationResult(
        sources={name: estimates[i] for i, name in enumerate(names)},
        sr=sr,
        masks={name: masks[i] for i, name in enumerate(names)},
        n_iter=n_iter,
        converged=converged,
        settings={**settings, "n_iter": n_iter, "converged": converged},
    )


def source_parts(W: np.ndarray, H: np.ndarray, labels: np.ndarray, n_sources: int) -> np.ndarray:
    """Each source's part of the model, ``W_i @ H_i``, shape (n_sources, n_freq, n_frames)."""
    parts = np.empty((n_sources, W.shape[0], H.shape[1]), dtype=W.dtype)
    for i in range(n_sources):
        cols = labels == i
        np.matmul(W[:, cols], H[cols], out=parts[i])
    return parts


def cluster_separate(
    y: np.ndarray,
    sr: int,
    *,
    n_sources: int = 2,
    n_components: int = DEFAULT_COMPONENTS,
    beta: float | str = DEFAULT_BETA,
    l1: float = 0.0,
    features: str | None = None,
    stft_config: STFTConfig | None = None,
    mask_power: float = DEFAULT_MASK_POWER,
    max_iter: int = DEFAULT_TRAIN_ITER,
    tol: float = DEFAULT_TOL,
    random_state: int | None = 0,
    callback: ProgressCallback | None = None,
) -> tuple[SeparationResult, NMFModel]:
    """Separate a mixture without training: NMF on the mixture, k-means on the bases.

    Parameters
    ----------
    y : np.ndarray, shape (n_channels, n_samples) or (n_samples,)
    sr : int
    n_sources : int
        Number of clusters (output sources ``source1`` ... ``sourceN``, ordered by the spectral
        centroid of their bases, lowest first).
    n_components : int
        Bases learned on the mixture (K >= n_sources).
    beta, l1, mask_power, max_iter, tol, random_state, callback
        As in :func:`train_model` and :func:`separate`.
    features : str, optional
        Basis features for the clustering (see :mod:`nmfsep.clustering`).
    stft_config : STFTConfig, optional
        Defaults to :func:`default_stft` for ``sr`` with a window of
        :data:`CLUSTER_WINDOW_SECONDS`.

    Returns
    -------
    result : SeparationResult
    model : NMFModel
        The clustered bases as a model usable by :func:`separate` on other files.
    """
    from nmfsep.clustering import DEFAULT_FEATURES, cluster_bases

    y = _check_audio(y, sr)
    gain = _safe_gain(y)
    if gain != 1.0:
        y = y * np.float32(gain)
    if n_sources < 1:
        raise ParameterError(f"n_sources must be >= 1, got {n_sources}")
    if n_components < n_sources:
        raise ParameterError(
            f"n_components ({n_components}) must be at least n_sources ({n_sources})"
        )
    features = features or DEFAULT_FEATURES
    config = stft_config or default_stft(sr, window_seconds=CLUSTER_WINDOW_SECONDS)
    X = stft(y, config)
    V = magnitude(X)
    beta_value = _beta_value(beta)
    result = fit_nmf(
        V,
        n_components=n_components,
        beta=beta_value,
        l1_H=l1,
        max_iter=max_iter,
        tol=tol,
        random_state=random_state,
        callback=_progress(callback, "factorise"),
    )
    labels = cluster_bases(
        result.W,
        H=result.H,
        n_clusters=n_sources,
        features=features,
        sr=sr,
        n_fft=config.n_fft,
        random_state=random_state,
    )
    names = [f"source{i + 1}" for i in range(n_sources)]
    parts = source_parts(result.W, result.H, labels, n_sources)
    masks = wiener_masks(parts, power=mask_power)
    settings = {
        "sr": sr,
        "stft": config.to_dict(),
        "beta": beta_value,
        "n_components": n_components,
        "n_sources": n_sources,
        "features": features,
        "components": {names[i]: int(np.sum(labels == i)) for i in range(n_sources)},
        "mask_power": mask_power,
        "l1": l1,
        "max_iter": max_iter,
        "tol": tol,
    }
    model = NMFModel(
        bases={names[i]: result.W[:, labels == i].astype(np.float32) for i in range(n_sources)},
        sr=int(sr),
        stft=config,
        beta=beta_value,
        metadata={
            "training": {
                "method": "cluster",
                **settings,
                "n_iter": int(result.n_iter),
                "converged": bool(result.converged),
            }
        },
    )
    separation = _masked_result(X, masks, names, config, y.shape[1], gain, sr, result, settings)
    return separation, model
