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


def _save(
    fig: Any, path: str | os.PathLike[str], protect: Any = None, replace: bool = True
) -> None:
    from nmfsep.audio import atomic_open

    with atomic_open(path, protect=protect, replace=replace) as fh:
        fig.savefig(fh, dpi=110, format="png")


#: Frequency axes of the pictures (``--plot-scale``); log shows speech best.
PLOT_SCALES = ("log", "linear", "mel")
#: Dynamic range drawn below the loudest cell (dB): quieter cells are all black.
RANGE_DB = 70.0
#: Lowest frequency of a log axis (Hz): below it there is little but rumble.
LOG_FMIN = 40.0


def _db(S: np.ndarray) -> np.ndarray:
    return 20.0 * np.log10(np.maximum(S, 1e-6 * max(float(S.max(initial=0.0)), 1e-12)))


def _hz(value: float, _pos: Any = None) -> str:
    if value >= 1000:
        return f"{value / 1000:g} kHz"
    return f"{value:g} Hz"


def _frequency_axis(ax: Any, scale: str, top: float) -> None:
    """``scale`` axis from LOG_FMIN (log, mel: 0) to ``top`` Hz, ticks in Hz / kHz."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

    if scale not in PLOT_SCALES:
        raise NmfsepError(f"plot scale must be one of {', '.join(PLOT_SCALES)}, got {scale!r}")
    if scale == "log":
        ax.set_yscale("log")
        ax.set_ylim(LOG_FMIN, top)
        ticks = [50, 100, 200, 500, 1000, 2000, 4000, 8000, 16000]
    elif scale == "mel":

        def to_mel(f: np.ndarray) -> np.ndarray:
            return 2595.0 * np.log10(1.0 + np.maximum(f, 0.0) / 700.0)

        def from_mel(m: np.ndarray) -> np.ndarray:
            return 700.0 * (10.0 ** (np.asarray(m) / 2595.0) - 1.0)

        ax.set_yscale("function", functions=(to_mel, from_mel))
        ax.set_ylim(0.0, top)
        ticks = [0, 250, 500, 1000, 2000, 4000, 8000, 16000]
    else:
        ax.set_ylim(0.0, top)
        step = 1000 if top <= 8000 else 2000 if top <= 16000 else 4000
        ticks = list(range(0, int(top) + 1, step))
    ax.yaxis.set_major_locator(FixedLocator([t for t in ticks if t <= top]))
    ax.yaxis.set_minor_locator(NullLocator())
    ax.yaxis.set_major_formatter(FuncFormatter(_hz))
    ax.set_ylabel("frequency")


def _image(ax: Any, data: np.ndarray, times: np.ndarray, freqs: np.ndarray, **style: Any) -> Any:
    return ax.pcolormesh(times, freqs, data, shading="auto", rasterized=True, **style)


def plot_separation(
    y: np.ndarray,
    sr: int,
    result: Any,
    path: str | os.PathLike[str],
    *,
    title: str = "",
    scale: str = "log",
    replace: bool = True,
) -> None:
    """The mixture's waveform and spectrogram, then each source's spectrogram and mask, on one
    time axis in seconds (frequency axis ``scale``: log, linear or mel; dB re the mixture's
    loudest cell, 70 dB range).

    Parameters
    ----------
    y : np.ndarray, shape (n_channels, n_samples)
        The mixture.
    sr : int
    result : SeparationResult
        Its ``settings["stft"]`` gives the STFT used.
    path : path-like
        PNG file to write (atomically).
    scale : str
        Frequency axis: ``log`` (default), ``linear`` or ``mel``.
    """
    from nmfsep.spectral import STFTConfig, stft

    plt = _pyplot()
    config = STFTConfig.from_dict(result.settings["stft"])
    names = list(result.sources)
    mono = y.mean(axis=0)
    mix_mag = np.abs(stft(mono, config))
    n_frames = mix_mag.shape[1]
    times = np.arange(n_frames) * config.hop_length / sr
    freqs = np.arange(mix_mag.shape[0]) * sr / config.n_fft
    end = len(mono) / sr
    top_db = float(_db(mix_mag).max())
    db_style = {"vmin": top_db - RANGE_DB, "vmax": top_db, "cmap": "magma"}
    fig, axes = plt.subplots(
        1 + len(names), 2, figsize=(13, 2.6 * (1 + len(names))), sharex=True, squeeze=False
    )
    im = _image(axes[0, 0], _db(mix_mag), times, freqs, **db_style)
    axes[0, 0].set_title(f"mixture {title}: spectrogram".strip())
    fig.colorbar(im, ax=axes[0, 0], label="dB")
    # waveforms: the mixture and each source, so the panel next to the mixture is never empty
    wave = axes[0, 1]
    t = np.arange(len(mono)) / sr
    step = max(1, len(mono) // 20000)  # a picture needs no more points than pixels
    wave.plot(t[::step], mono[::step], color="0.6", lw=0.6, label="mixture")
    colours = ["tab:blue", "tab:orange", "tab:green", "tab:purple", "tab:red"]
    for i, name in enumerate(names):
        src = result.sources[name].mean(axis=0)
        wave.plot(t[::step], src[::step], color=colours[i % len(colours)], lw=0.5, alpha=0.8,
                  label=name)  # fmt: skip
    wave.set_title("waveforms")
    wave.set_ylabel("amplitude")
    wave.legend(loc="upper right", fontsize="small", ncol=1 + len(names))
    peak = float(np.max(np.abs(mono), initial=0.0)) or 1.0
    wave.set_ylim(-1.1 * peak, 1.1 * peak)
    for row, name in enumerate(names, start=1):
        source_mag = np.abs(stft(result.sources[name].mean(axis=0), config))
        im = _image(axes[row, 0], _db(source_mag), times, freqs, **db_style)
        axes[row, 0].set_title(f"{name}: spectrogram")
        fig.colorbar(im, ax=axes[row, 0], label="dB")
        mask = result.masks[name]
        im = _image(axes[row, 1], mask, times[: mask.shape[1]], freqs[: mask.shape[0]],
                    vmin=0, vmax=1, cmap="viridis")  # fmt: skip
        axes[row, 1].set_title(f"{name}: mask (share of each cell)")
        fig.colorbar(im, ax=axes[row, 1], label="mask")
    for ax in (*axes[:, 0], *axes[1:, 1]):
        _frequency_axis(ax, scale, sr / 2.0)
    for ax in axes.flat:
        ax.set_xlim(0.0, end)
    for ax in axes[-1, :]:
        ax.set_xlabel("time (s)")
    fig.tight_layout()
    _save(fig, path, replace=replace)
    plt.close(fig)


def plot_model(
    model: Any,
    path: str | os.PathLike[str],
    *,
    protect: Any = None,
    scale: str = "log",
    replace: bool = True,
) -> None:
    """Draw each source's bases (dB, one column per basis), one colour per source.

    Bases that are patches of several frames (``model.context > 1``) are drawn by their centre
    frame, so the vertical axis stays a frequency axis (``scale``: log, linear or mel).

    Parameters
    ----------
    model : NMFModel
    path : path-like
        PNG file to write.
    protect : collection of paths, optional
        Files the PNG must never replace (the model file being drawn).
    scale : str
        Frequency axis: ``log`` (default), ``linear`` or ``mel``.
    """
    plt = _pyplot()
    names = list(model.source_names)
    freqs = model.stft.frequencies(model.sr)
    fig, axes = plt.subplots(
        1, len(names), figsize=(3.6 * len(names) + 1.5, 4.5), sharey=True, squeeze=False
    )
    cmaps = ["Blues", "Oranges", "Greens", "Purples", "Reds", "Greys"]
    for i, name in enumerate(names):
        W = model.bases[name]
        centre = model.context // 2
        W = W[centre * model.n_freq : (centre + 1) * model.n_freq]
        # each basis on its own peak: their shapes, not their (arbitrary) scales, are compared
        db = _db(W / np.maximum(W.max(axis=0, keepdims=True), 1e-12))
        ax = axes[0, i]
        im = _image(ax, np.maximum(db, -60.0), np.arange(1, W.shape[1] + 1), freqs,
                    vmin=-60, vmax=0, cmap=cmaps[i % len(cmaps)] + "_r")  # fmt: skip
        ax.set_title(f"{name} ({W.shape[1]} bases)")
        ax.set_xlabel("basis")
        fig.colorbar(im, ax=ax, label="dB re the basis's peak")
        _frequency_axis(ax, scale, float(freqs[-1]))
        if i:
            ax.set_ylabel("")
    patch = f", centre frame of {model.context}-frame patches" if model.context > 1 else ""
    fig.suptitle(f"nmfsep model: {model.sr} Hz, n_fft {model.stft.n_fft}{patch}")
    fig.tight_layout()
    _save(fig, path, protect, replace)
    plt.close(fig)
