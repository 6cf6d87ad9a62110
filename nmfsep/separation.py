"""The array API: separate (and train, from :mod:`nmfsep.training`) audio held in memory.

Separation runs as thin loops over the engine (:mod:`nmfsep.engine`).

``separate`` runs a :class:`~nmfsep.engine.Separator` over the whole array, so it gives exactly
what the file command writes for the same samples; ``cluster_separate`` learns a model from the
mixture itself (:func:`nmfsep.unsupervised.cluster_model`) and separates with it the same way.
Reading and writing files is the job of :mod:`nmfsep.streaming` and :mod:`nmfsep.batch`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from nmfsep import limits
from nmfsep.engine import Separator
from nmfsep.errors import ParameterError
from nmfsep.model import NMFModel
from nmfsep.options import ClusterOptions, SeparateOptions, options_from
from nmfsep.training import train_model
from nmfsep.validation import check_audio

# train_model is re-exported: the array API (train, separate, cluster) in one namespace
__all__ = ["SeparationResult", "cluster_separate", "separate", "train_model"]


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
        Most NMF iterations run by a block.
    converged : bool
        Whether every block stopped on its tolerance rather than on ``max_iter``.
    settings : dict
        The settings used (STFT, beta, components, mask power, ...), JSON-able.
    """

    sources: dict[str, np.ndarray]
    sr: int
    masks: dict[str, np.ndarray]
    n_iter: int
    converged: bool
    settings: dict[str, Any] = field(default_factory=dict)


def _run(separator: Separator, y: np.ndarray) -> SeparationResult:
    out = np.empty((len(separator.names), *y.shape), np.float32)
    head = separator.push(y)
    out[..., : head.shape[-1]] = head
    out[..., head.shape[-1] :] = separator.finish()
    return SeparationResult(
        sources={name: out[i] for i, name in enumerate(separator.names)},
        sr=separator.plan.sr,
        masks=separator.masks,
        n_iter=separator.n_iter,
        converged=separator.converged,
        settings=separator.settings,
    )


def separate(
    y: np.ndarray,
    sr: int,
    model: NMFModel | str | os.PathLike[str] | None = None,
    *,
    options: SeparateOptions | None = None,
    n_threads: int = 1,
    **overrides: Any,
) -> SeparationResult:
    """Separate a mixture with a trained model (supervised, or semi-supervised).

    The model's bases W are fixed, activations H are learned on the mixture's magnitude
    spectrogram, and each source gets the Wiener soft mask
    ``M_i = (W_i H_i)^p / sum_j (W_j H_j)^p`` applied to the complex mixture STFT, followed by
    the inverse STFT with overlap-add.

    Parameters
    ----------
    y : np.ndarray, shape (n_channels, n_samples) or (n_samples,)
        The mixture.
    sr : int
        Its sample rate (need not be the model's: see :mod:`nmfsep.engine`).
    model : NMFModel, str or path-like, optional
        A model, a model file's path, or ``"default"``; default: the built-in speech/noise
        model.
    options : SeparateOptions, optional
        Or its fields as keyword arguments: ``mask_power``, ``free_components``, ``beta``,
        ``l1``, ``max_iter``, ``tol``, ``seed``, ``block_seconds``.
    n_threads : int
        Blocks separated in parallel (supervised).

    Returns
    -------
    SeparationResult
    """
    y = check_audio(y, limits.check_array_rate(sr))
    separator = Separator(
        _as_model(model),
        sr=int(sr),
        channels=y.shape[0],
        options=options_from(SeparateOptions, options, overrides),
        n_threads=n_threads,
        keep_masks=True,
    )
    return _run(separator, y)


def _as_model(model: NMFModel | str | os.PathLike[str] | None) -> NMFModel | None:
    """A model given as itself, a file path or ``"default"`` (as ``separate -m`` takes it)."""
    if model is None or isinstance(model, NMFModel):
        return model
    if isinstance(model, (str, os.PathLike)):
        from nmfsep.model import default_model, load_model

        return default_model() if str(model) == "default" else load_model(model)
    raise ParameterError(
        f"model must be an NMFModel, a model file's path or 'default', not {type(model).__name__}"
    )


def cluster_separate(
    y: np.ndarray,
    sr: int,
    *,
    options: ClusterOptions | None = None,
    allow_silent: bool = True,
    **overrides: Any,
) -> tuple[SeparationResult, NMFModel]:
    """Separate a mixture without training: NMF on (a sample of) its frames, k-means on the
    bases, then separation with the clustered bases fixed.

    Parameters
    ----------
    y : np.ndarray, shape (n_channels, n_samples) or (n_samples,)
    sr : int
    options : ClusterOptions, optional
        Or its fields as keyword arguments (``n_sources``, ``n_components``, ``features``, ...).
    allow_silent : bool
        A digitally silent mixture gives silent sources and a model of equal flat bases
        (``settings["silent"]``); with ``False``, a ``ParameterError`` instead.

    Returns
    -------
    result : SeparationResult
        Sources ``source1`` ... ``sourceN`` (lowest spectral centroid first).
    model : NMFModel
        The clustered bases as a model usable by :func:`separate` on other files.
    """
    from nmfsep.unsupervised import cluster_model, sample_frames

    y = check_audio(y, limits.check_array_rate(sr))
    opts = options_from(ClusterOptions, options, overrides)
    V, speech, config, _ = sample_frames([y], sr=int(sr), channels=y.shape[0], options=opts)
    model = cluster_model(
        V, sr=int(sr), config=config, options=opts, speech=speech, allow_silent=allow_silent
    )
    separator = Separator(
        model, sr=int(sr), channels=y.shape[0], options=opts.separate_options(), keep_masks=True
    )
    result = _run(separator, y)
    result.settings.update(model.metadata["training"]["cluster"])
    return result, model
