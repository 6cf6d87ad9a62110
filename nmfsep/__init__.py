"""nmfsep: audio source separation with non-negative matrix factorization.

The public API is imported lazily so that ``import nmfsep`` (and ``nmfsep --help``) stays fast:
librosa and scikit-learn are only imported when a function that needs them is first used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from nmfsep.errors import AudioError, ModelError, NmfsepError, ParameterError

__version__ = "0.1.0"

# public name -> module that defines it
_LAZY = {
    "beta_divergence": "nmfsep.nmf",
    "fit_nmf": "nmfsep.nmf",
    "NMFResult": "nmfsep.nmf",
    "STFTConfig": "nmfsep.spectral",
    "load_audio": "nmfsep.audio",
    "write_audio": "nmfsep.audio",
    "NMFModel": "nmfsep.model",
    "load_model": "nmfsep.model",
    "default_model": "nmfsep.model",
    "wiener_masks": "nmfsep.masks",
    "train_model": "nmfsep.training",
    "Separator": "nmfsep.engine",
    "SeparationPlan": "nmfsep.engine",
    "SeparateOptions": "nmfsep.options",
    "ClusterOptions": "nmfsep.options",
    "TrainOptions": "nmfsep.options",
    "separate_file": "nmfsep.streaming",
    "cluster_file": "nmfsep.streaming",
    "evaluate_files": "nmfsep.evaluation",
    "separate": "nmfsep.separation",
    "cluster_separate": "nmfsep.separation",
    "SeparationResult": "nmfsep.separation",
    "cluster_bases": "nmfsep.clustering",
    "evaluate_separation": "nmfsep.metrics",
    "si_sdr": "nmfsep.metrics",
    "bss_eval": "nmfsep.metrics",
}

__all__ = [
    "AudioError",
    "ClusterOptions",
    "ModelError",
    "NMFModel",
    "NMFResult",
    "NmfsepError",
    "ParameterError",
    "STFTConfig",
    "SeparateOptions",
    "SeparationPlan",
    "SeparationResult",
    "Separator",
    "TrainOptions",
    "__version__",
    "beta_divergence",
    "bss_eval",
    "cluster_bases",
    "cluster_file",
    "cluster_separate",
    "default_model",
    "evaluate_files",
    "evaluate_separation",
    "fit_nmf",
    "load_audio",
    "load_model",
    "separate",
    "separate_file",
    "si_sdr",
    "train_model",
    "wiener_masks",
    "write_audio",
]

if TYPE_CHECKING:  # pragma: no cover
    from nmfsep.audio import load_audio, write_audio
    from nmfsep.clustering import cluster_bases
    from nmfsep.engine import SeparationPlan, Separator
    from nmfsep.evaluation import evaluate_files
    from nmfsep.masks import wiener_masks
    from nmfsep.metrics import bss_eval, evaluate_separation, si_sdr
    from nmfsep.model import NMFModel, default_model, load_model
    from nmfsep.nmf import NMFResult, beta_divergence, fit_nmf
    from nmfsep.options import ClusterOptions, SeparateOptions, TrainOptions
    from nmfsep.separation import SeparationResult, cluster_separate, separate
    from nmfsep.spectral import STFTConfig
    from nmfsep.streaming import cluster_file, separate_file
    from nmfsep.training import train_model


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'nmfsep' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
