"""Pictures of a separation and of a model (matplotlib: the optional ``plot`` extra).

Nothing here is imported unless a ``--plot`` option is used; without matplotlib the functions
raise :class:`~nmfsep.errors.NmfsepError` naming the extra to install.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from nmfsep.errors import NmfsepError


def _pyplot() -> Any:
    try:
        import matplotlib

        matplotlib.use("Agg")  # files only, never a window
        import matplotlib.pyplot as plt
    except ImportError:
        raise NmfsepError("plots need the 'plot' extra: pip install 'nmfsep[plot]'") from None
    return plt


def _save(fig: Any, path: str | os.PathLike[str], protect: Any = None) -> None:
    from nmfsep.audio import atomic_open

    with atomic_open(path, protect=protect) as fh:
        fig.savefig(fh, dpi=110, format="png")


def _db(S: np.ndarray) -> np.ndarray:
    return 20.0 * np.log10(np.maximum(S, 1e-6 * max(float(S.max(initial=0.0)), 1e-12)))


def plot_separation(
    y: np.ndarray, sr: int, result: Any, path: str | os.PathLike[str], *, title: str = ""
) -> None:
    """Mixture spectrogram, then each source's spectrogram and mask, on one time axis.

    Parameters
    ----------
    y : np.ndarray, shape (n_channels, n_samples)
        The mixture.
    sr : int
    result : SeparationResult
        Its ``settings["stft"]`` gives the STFT used.
    path : path-like
        PNG file to write (atomically).
    """
    from nmfsep.spectral import STFTConfig, stft

    plt = _pyplot()
    config = STFTConfig.from_dict(result.settings["stft"])
    names = list(result.sources)
    mix_mag = np.abs(stft(y.mean(axis=0), config))
    n_frames = mix_mag.shape[1]
    extent = (0.0, n_frames * config.hop_length / sr, 0.0, sr / 2.0)
    top_db = float(_db(mix_mag).max())
    fig, axes = plt.subplots(
        1 + len(names), 2, figsize=(12, 2.4 * (1 + len(names))), sharex=True, squeeze=False
    )
    style = {"origin": "lower", "aspect": "auto", "extent": extent}
    im = axes[0, 0].imshow(_db(mix_mag), vmin=top_db - 80, vmax=top_db, cmap="magma", **style)
    axes[0, 0].set_title(f"mixture {title}".strip())
    fig.colorbar(im, ax=axes[0, 0], label="dB")
    axes[0, 1].axis("off")
    for row, name in enumerate(names, start=1):
        source_mag = np.abs(stft(result.sources[name].mean(axis=0), config))
        im = axes[row, 0].imshow(
            _db(source_mag), vmin=top_db - 80, vmax=top_db, cmap="magma", **style
        )
        axes[row, 0].set_title(f"{name}: spectrogram")
        fig.colorbar(im, ax=axes[row, 0], label="dB")
        im = axes[row, 1].imshow(result.masks[name], vmin=0, vmax=1, cmap="viridis", **style)
        axes[row, 1].set_title(f"{name}: soft mask")
        fig.colorbar(im, ax=axes[row, 1], label="mask")
    for ax in axes[:, 0]:
        ax.set_ylabel("frequency (Hz)")
    for ax in axes[-1, :]:
        ax.set_xlabel("time (s)")
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)


def plot_model(model: Any, path: str | os.PathLike[str], *, protect: Any = None) -> None:
    """Draw each source's bases (dB, one column per basis), one colour per source.

    Bases that are patches of several frames (``model.context > 1``) are drawn by their centre
    frame, so the vertical axis stays a frequency axis.

    Parameters
    ----------
    model : NMFModel
    path : path-like
        PNG file to write.
    protect : collection of paths, optional
        Files the PNG must never replace (the model file being drawn).
    """
    plt = _pyplot()
    names = list(model.source_names)
    freqs = model.stft.frequencies(model.sr)
    fig, axes = plt.subplots(
        1, len(names), figsize=(3.2 * len(names) + 1, 4), sharey=True, squeeze=False
    )
    cmaps = ["Blues", "Oranges", "Greens", "Purples", "Reds", "Greys"]
    for i, name in enumerate(names):
        W = model.bases[name]
        centre = model.context // 2
        W = W[centre * model.n_freq : (centre + 1) * model.n_freq]
        db = _db(W / max(float(W.max(initial=0.0)), 1e-12))
        ax = axes[0, i]
        im = ax.imshow(
            db,
            origin="lower",
            aspect="auto",
            vmin=-60,
            vmax=0,
            cmap=cmaps[i % len(cmaps)] + "_r",
            extent=(0.5, W.shape[1] + 0.5, freqs[0], freqs[-1]),
        )
        ax.set_title(f"{name} ({W.shape[1]} bases)")
        ax.set_xlabel("basis")
        fig.colorbar(im, ax=ax, label="dB re max")
    axes[0, 0].set_ylabel("frequency (Hz)")
    patch = f", centre frame of {model.context}-frame patches" if model.context > 1 else ""
    fig.suptitle(f"nmfsep model: {model.sr} Hz, n_fft {model.stft.n_fft}{patch}")
    fig.tight_layout()
    _save(fig, path, protect)
    plt.close(fig)
