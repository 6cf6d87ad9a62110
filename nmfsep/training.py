"""Training: learn a dictionary of spectral bases for each source from clean examples.

:func:`train_model` works on arrays; :func:`train_from_files` reads each source's files
(bounded: at most :data:`~nmfsep.defaults.TRAIN_SECONDS` per source) and calls it. Memory is
bounded by a seeded sample of at most ``max_frames`` audible frames per source, spread over the
examples in proportion to their length, whatever the amount of audio.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from nmfsep import defaults
from nmfsep.engine import default_stft, safe_gain
from nmfsep.errors import ParameterError
from nmfsep.frames import stack_frames
from nmfsep.model import NMFModel
from nmfsep.nmf import fit_nmf
from nmfsep.options import TrainOptions, options_from
from nmfsep.spectral import STFTConfig, stft
from nmfsep.validation import check_audio

__all__ = ["ProgressCallback", "train_from_files", "train_model"]

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


def train_config(sr: int, options: TrainOptions) -> STFTConfig:
    """The STFT of a model trained at ``sr`` with ``options`` (``n_fft``/``hop_length`` or the
    default window)."""
    if options.n_fft is None and options.hop_length is None:
        return default_stft(sr)
    n_fft = options.n_fft or default_stft(sr).n_fft
    return STFTConfig(n_fft=n_fft, hop_length=options.hop_length or n_fft // 4)


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
        Clean examples of each source, all at rate ``sr`` (channels are averaged). Order is
        kept in the model.
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
    if not sources:
        raise ParameterError("at least one source is needed to train a model")
    config = stft_config or train_config(int(sr), o)
    rng = np.random.default_rng(o.seed)
    bases: dict[str, np.ndarray] = {}
    info: dict[str, Any] = {"sources": {}}
    for name, examples in sources.items():
        if not examples:
            raise ParameterError(f"source {name!r} has no training audio")
        # Each example gets a share of max_frames in proportion to its length; audible frames
        # are sampled first and only those are stacked into patches (within the example, never
        # across two), so memory is bounded by max_frames whatever the amount of audio.
        total_samples = sum(np.shape(y)[-1] for y in examples)
        patches, n_total, n_audible = [], 0, 0
        for y in examples:
            y = check_audio(y, sr)
            y = y * np.float32(safe_gain(y))
            S = np.abs(stft(y, config)).mean(axis=0, dtype=np.float32)
            n_total += S.shape[1]
            audible = _audible_frames(S)
            n_audible += audible.size
            budget = max(1, round(o.max_frames * y.shape[1] / total_samples))
            if audible.size > budget:
                audible = np.sort(rng.choice(audible, size=budget, replace=False))
            patches.append(stack_frames(S, o.context, audible))
            del S
        V = _unit_mean(np.concatenate(patches, axis=1))
        del patches
        if V.shape[1] == 0:
            raise ParameterError(f"source {name!r}: the training audio is silent")
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
    meta["training"].update(
        {"l1": o.l1, "l2": o.l2, "max_iter": o.max_iter, "tol": o.tol, "seed": o.seed}
    )
    return NMFModel(
        bases=bases,
        sr=int(sr),
        stft=config,
        beta=o.beta,
        metadata=meta,
        context=o.context,
    )


def _stage(callback: ProgressCallback, name: str) -> Callable[[int, float], None]:
    return lambda n_iter, loss: callback(name, n_iter, loss)


def train_from_files(
    sources: Mapping[str, Sequence[Path]],
    *,
    sr: int | None = None,
    options: TrainOptions | None = None,
    progress: Callable[[str], None] | None = None,
    callback: ProgressCallback | None = None,
) -> NMFModel:
    """Read each source's files (resampled to ``sr``) and train a model on them.

    ``sr`` defaults to the first file's rate. A source with more than
    :data:`~nmfsep.defaults.TRAIN_SECONDS` of audio is read as the same share of each file
    (from its start). ``progress(message)`` receives one line per step.
    """
    from nmfsep import __version__
    from nmfsep.audio import audio_info, load_audio

    o = options or TrainOptions()
    say = progress or (lambda message: None)
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
    return model
