"""The separation engine: one plan, one block runner, one chunk API under every path.

Every separation nmfsep does — a whole array (:func:`nmfsep.separation.separate`), a file of any
length streamed block by block (:func:`nmfsep.streaming.separate_file`), the separation pass of
``cluster``, and live audio pushed in chunks of any size (:class:`Separator`) — runs here:

* :class:`SeparationPlan` is built once per (model, input rate, channels, options). It owns the
  sources' names, the bases mapped onto the input's frequency grid, the frame context, the
  free-basis initialisation, the level policy, the mask and the settings record.
* :func:`separate_block` turns the samples of one block of STFT frames (with the context the
  frame stacking needs on each side) into each source's overlap-added samples. It is a pure
  function of the plan (and, semi-supervised, of the free bases carried from the previous block).
* :class:`Separator` cuts any stream of samples into those blocks at fixed frame positions,
  overlap-adds their outputs and hands out the samples that no later frame can change. Block
  boundaries depend only on frame positions, never on how the input was chunked, so the outputs
  are the same for any chunking — and the array, file and live paths are the same loop.

Streaming is exact for supervised separation: with the bases fixed, each frame is brought to unit
mean level and fitted on its own (its context patch included), so a frame's result does not
depend on the other frames. The only dependence on the block size is the grouping of frames for
the convergence test of :func:`nmfsep.nmf.fit_nmf` (with ``tol=0`` none). The temporal
continuity penalty (``continuity``) couples the frames of a block: with it, continuity holds
inside each block only, and the result depends on where the (fixed) block boundaries fall.
Semi-supervised separation (free bases) is an online approximation on inputs longer than one
block: the free bases of each block start from those of the previous one. The tracked gain
(``gain="tracked"``, :mod:`nmfsep.tracking`) also works on a block's frames (its noise tracker
and recursions restart at each fixed block boundary), and so does the learned mask refiner
(``refine``, :mod:`nmfsep.refine`: its level reference is the mean power of the 5 s around each
frame, cut at the block's edges), the cluster blend (``cluster_blend``, :mod:`nmfsep.blend`: the
block's own bases) and the stationary expert (``stationary_blend``, :mod:`nmfsep.stationary`: a
gate per block, and a short-window Wiener filter on the block's samples blended into the first
source's overlap-added samples, so that with it the returned masks describe the NMF's part).

Frame ``j`` is centred on sample ``j * hop``: it covers samples ``[j*hop - n_fft//2, j*hop +
n_fft - n_fft//2)``, zeros outside the signal — librosa's centred STFT. Internally positions are
*padded* coordinates (sample + ``n_fft // 2``), where frame ``j`` starts at ``j * hop``.

Sample rates: a model's bases live on the frequency grid of its rate. A mixture at another rate
is not resampled: its STFT has the same frame duration (``n_fft`` and ``hop_length`` scaled by
the rate ratio) and the bases are interpolated onto its bins; bins above the model's Nyquist
frequency get the masks of the highest modelled bin. Outputs keep the input's rate, channels
and length exactly, and the sources sum to the mixture.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from nmfsep import defaults, limits
from nmfsep.errors import ParameterError
from nmfsep.frames import stack_frames, unstack_frames
from nmfsep.masks import wiener_masks
from nmfsep.model import NMFModel
from nmfsep.nmf import fit_nmf
from nmfsep.options import SeparateOptions, options_from
from nmfsep.spectral import (
    STFTConfig,
    istft_rows,
    normalise,
    stft_rows,
    window_sum,
    windows,
)

if TYPE_CHECKING:
    from nmfsep.refine import Refiner

__all__ = [
    "BlockResult",
    "Framer",
    "SeparationPlan",
    "Separator",
    "auto_block_frames",
    "default_stft",
    "map_bases",
    "output_sources",
    "safe_gain",
    "separate_block",
    "stft_for_rate",
]

# ------------------------------------------------------------------------------ grid and sizes


def default_stft(sr: int, *, window_seconds: float = defaults.WINDOW_SECONDS) -> STFTConfig:
    """STFT settings for a rate: a window of about ``window_seconds`` (a power of two in samples)
    and 75 % overlap. Long windows resolve the harmonics of speech and music finely, which is what
    NMF bases tell sources apart by. 16 kHz gives n_fft 2048 / hop 512, 44.1 kHz 4096 / 1024.
    """
    n_fft = int(2 ** round(math.log2(max(window_seconds * sr, 16))))
    # at 768 kHz the window would be 2^17 samples, over the limit table's n_fft: the largest
    # allowed (85 ms there, still longer than the 64 ms of 2048 at 32 kHz)
    n_fft = min(n_fft, limits.MAX_N_FFT)
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


def output_sources(
    model: NMFModel, free_components: int = 0, free_source: str | None = None
) -> list[str]:
    """Names of the sources a separation with ``model`` gives: the model's, then ``residual``
    when free bases are learned as a source of their own (not adapting ``free_source``).

    Raises
    ------
    ParameterError
        Negative ``free_components``, a model source already named ``residual``, a
        ``free_source`` the model does not have, or a one-source model without free bases
        (nothing to separate).
    """
    if free_components < 0:
        raise ParameterError(f"free_components must be >= 0, got {free_components}")
    names = list(model.source_names)
    if free_components and free_source is not None:
        if free_source not in names:
            raise ParameterError(
                f"free_source {free_source!r} is not a source of the model ({', '.join(names)})"
            )
        if len(names) < 2:
            raise ParameterError("a one-source model separates nothing by itself")
        return names
    if free_components and defaults.RESIDUAL in names:
        raise ParameterError(f"the model already has a source named {defaults.RESIDUAL!r}")
    if len(names) + (1 if free_components else 0) < 2:
        raise ParameterError(
            "a one-source model separates nothing by itself: add --free-components K "
            "to learn the rest of the mixture"
        )
    return [*names, defaults.RESIDUAL] if free_components else names


def auto_block_frames(config: STFTConfig, sr: int, channels: int) -> int:
    """Frames per block: about :data:`~nmfsep.defaults.BLOCK_STFT_BYTES` of complex STFT, 10 to
    60 s of audio (44.1 kHz stereo: about 23 s; 16 kHz mono: 60 s)."""
    per_frame = max(1, channels) * config.n_freq * 8
    frames = defaults.BLOCK_STFT_BYTES // per_frame
    lo = int(defaults.MIN_BLOCK_SECONDS * sr / config.hop_length)
    hi = int(defaults.MAX_BLOCK_SECONDS * sr / config.hop_length)
    return int(max(lo, min(hi, frames), 1))


def _block_frames(block_seconds: float | None, config: STFTConfig, sr: int, channels: int) -> int:
    if block_seconds is None:
        return auto_block_frames(config, sr, channels)
    return max(1, round(block_seconds * sr / config.hop_length))


def safe_gain(x: np.ndarray) -> float:
    """A power of two that brings ``x``'s peak into :data:`~nmfsep.defaults.SAFE_PEAK` (1.0 when
    inside, or silent). Powers of two scale float32 exactly, so undoing the gain is exact."""
    peak = float(np.max(np.abs(x), initial=0.0))
    lo, hi = defaults.SAFE_PEAK
    if peak == 0.0 or lo <= peak <= hi:
        return 1.0
    # at most 2**126, so that the gain itself is a (normal) float32: a subnormal peak (float
    # audio at 1e-40) is still brought up to 2**-23 or more, never multiplied by infinity
    return 2.0 ** min(-math.ceil(math.log2(peak)), 126)


def analysis_bands(freqs: np.ndarray, n_bands: int) -> np.ndarray:
    """First bin of each analysis band: contiguous bins grouped into about ``n_bands`` bands
    equally spaced on the ERB-rate scale (Glasberg & Moore 1990), never narrower than one bin.

    Low frequencies keep every bin (where speech harmonics are resolved); high ones are summed
    into bands a fraction of an auditory filter wide. Activations are inferred on the bands
    (``M W`` and ``M V`` with ``M`` summing the bins of each band, so the model stays linear:
    ``M (W H) = (M W) H``) and the masks are built from the full-resolution bases: far fewer
    flops for the same masks (the compressed analysis dictionaries of issue 13).

    Returns
    -------
    np.ndarray of int, shape (n_found,), starting with 0, strictly increasing
    """
    erb = 21.4 * np.log10(1.0 + 0.00437 * np.asarray(freqs, dtype=np.float64))
    F = erb.size
    if n_bands >= F:
        return np.arange(F)
    n_edges = n_bands
    while True:  # bands narrower than a bin merge into single bins: ask for more edges
        edges = np.linspace(erb[0], erb[-1], n_edges + 1)[:-1]
        starts = np.unique(np.searchsorted(erb, edges, side="left"))
        if starts.size >= n_bands or n_edges > 4 * F:
            return starts.astype(np.int64)
        n_edges += max(1, n_bands - starts.size)


def _band_sum(X: np.ndarray, starts: np.ndarray | None, context: int) -> np.ndarray:
    """Sum the bins of each band, per context block of the rows of ``X``."""
    if starts is None:
        return X
    F = X.shape[0] // context
    blocks = X.reshape(context, F, -1)
    return np.add.reduceat(blocks, starts, axis=1).reshape(context * starts.size, -1)


def _unit_mean(V: np.ndarray, *, balance: float) -> np.ndarray:
    """``V`` scaled to a mean of 1: frame ``t`` divided by ``m_t^b m^(1-b)`` (``m_t`` its mean,
    ``m`` the block's, ``b`` the balance): 1 frame by frame, 0 as a whole. Silent frames are
    left as they are."""
    if balance <= 0.0:
        mean_all = float(V.mean(dtype=np.float64)) if V.size else 0.0
        return V if mean_all <= 0.0 else V * np.float32(1.0 / mean_all)
    mean = V.mean(axis=0, dtype=np.float64, keepdims=True)
    scale = np.where(mean > 0.0, mean, 1.0)
    if balance < 1.0:
        mean_all = float(mean.mean()) if V.size else 0.0
        scale = scale**balance * (mean_all if mean_all > 0.0 else 1.0) ** (1.0 - balance)
    return (V / scale).astype(V.dtype, copy=False)


# ------------------------------------------------------------------------------ the plan


@dataclass(frozen=True, eq=False)
class SeparationPlan:
    """Everything a separation of one stream needs, decided once.

    Build it with :meth:`create`; it is immutable and shared by the threads that process blocks.

    Attributes
    ----------
    names : tuple of str
        Output sources, in order (the model's, then ``residual`` with free bases).
    sr, channels : int
        Rate and channel count of the input (and outputs).
    config : STFTConfig
        STFT at the input's rate.
    W : np.ndarray, shape (context * n_modelled, K_fixed), float32
        The model's bases on the input's grid (fixed).
    n_modelled : int
        Bins the model covers (higher bins continue the top bin's masks).
    context : int
        Frames per basis.
    labels : np.ndarray of int, shape (K_fixed + free_components,)
        Source index of every basis column (fixed ones, then free ones).
    options : SeparateOptions
    beta, l1 : float
        Divergence and L1 penalty used (options resolved against the model).
    block_frames : int
        New frames per block.
    """

    names: tuple[str, ...]
    sr: int
    channels: int
    model_sr: int
    config: STFTConfig
    W: np.ndarray
    n_modelled: int
    context: int
    labels: np.ndarray
    options: SeparateOptions
    beta: float
    l1: float
    block_frames: int
    components: dict[str, int]
    window: np.ndarray = field(repr=False)
    window_sq: np.ndarray = field(repr=False)
    bands: np.ndarray | None = field(default=None, repr=False)
    W_analysis: np.ndarray | None = field(default=None, repr=False)
    #: reconstruction bases of a discriminatively trained model on the input's grid (the masks
    #: are built from them; ``W`` still infers the activations), or None
    W_recon: np.ndarray | None = field(default=None, repr=False)
    #: each source's percussive share when the harmonic/percussive prior is on (nmfsep.hpss)
    percussive_share: np.ndarray | None = field(default=None, repr=False)
    #: the model's learned mask refiner when ``options.refine`` is on (nmfsep.refine)
    refiner: Refiner | None = field(default=None, repr=False)
    #: first bins of the cluster blend's band sets when ``options.cluster_blend`` is on
    #: (nmfsep.blend), over every bin of the STFT
    blend_bands: tuple[np.ndarray, ...] | None = field(default=None, repr=False)

    @classmethod
    def create(
        cls,
        model: NMFModel,
        *,
        sr: int,
        channels: int = 1,
        options: SeparateOptions | None = None,
    ) -> SeparationPlan:
        """The plan of separating a stream at rate ``sr`` with ``channels`` channels by ``model``.

        Raises
        ------
        ParameterError
            Bad options, or a model that separates nothing.
        """
        from nmfsep.validation import MAX_ARRAY_CHANNELS, check_int, check_sr

        opts = (options if options is not None else SeparateOptions()).resolved(
            model.metadata.get("separation") if isinstance(model.metadata, dict) else None
        )
        assert opts.free_components is not None and opts.mask_power is not None
        sr = check_sr(sr)
        channels = check_int("channels", channels, low=1, high=MAX_ARRAY_CHANNELS)
        names = output_sources(model, opts.free_components, opts.free_source)
        if opts.continuity_source is not None and opts.continuity_source not in names:
            raise ParameterError(
                f"continuity_source {opts.continuity_source!r} is not a source of this "
                f"separation ({', '.join(names)})"
            )
        config = stft_for_rate(model.stft, model.sr, sr)
        W, n_modelled = map_bases(model.W, model.sr, model.stft, sr, config, context=model.context)
        labels = model.component_sources()
        adapt = bool(opts.free_components) and opts.free_source is not None
        free_label = names.index(str(opts.free_source)) if adapt else len(names) - 1
        if opts.free_components:
            labels = np.concatenate([labels, np.full(opts.free_components, free_label)])
        window, window_sq = windows(config)
        components = dict(model.n_components)
        if opts.free_components:
            name = names[free_label]
            components[name] = components.get(name, 0) + opts.free_components
        W = np.ascontiguousarray(W, dtype=np.float32)
        W_recon = None
        R_model = model.W_recon
        if R_model is not None:
            R, _ = map_bases(R_model, model.sr, model.stft, sr, config, context=model.context)
            W_recon = np.ascontiguousarray(R, dtype=np.float32)
        bands = W_analysis = None
        # Compressed analysis with fixed bases, and with free bases that adapt a source of the
        # model (their part spread over each band's bins like the mixture) when asked: the
        # built-in model recommends every bin (analysis_bands 0) with 7 iterations, measured
        # +0.2 dB on the folds and +2.6 dB on the dev cases over 256 bands with 20 (bench/
        # README.md, session 4). Free bases that are a source of their own always stay on the
        # full grid: on the bands they were measured much worse with a speech-only model (dev
        # cases, 8 free bases: 11.4 -> 4.6, 4.7 -> 3.2, 10.5 -> 8.3 dB): blurred harmonics let
        # them take the speech.
        if opts.analysis_bands and (adapt or not opts.free_components):
            bands = analysis_bands(config.frequencies(sr)[:n_modelled], opts.analysis_bands)
            if bands.size < n_modelled:
                W_analysis = np.ascontiguousarray(_band_sum(W, bands, int(model.context)))
            else:
                bands = None
        shares = None
        if opts.hpss_prior:
            from nmfsep import hpss

            shares = hpss.shares_for(model.metadata, names)
            if shares is None:
                raise ParameterError(
                    "hpss_prior needs a model that records its sources' percussive shares "
                    "(train it with --hpss-prior)"
                )
        refiner = None
        if opts.refine:
            if model.refiner is None:
                raise ParameterError(
                    "refine needs a model that carries a learned mask refiner (the built-in "
                    "model does)"
                )
            refiner = model.refiner
        if opts.stationary_blend and len(names) != 2:
            if options is None or options.stationary_blend is None:
                # recommended by the model (the built-in one), not asked for: a separation
                # with a third source (free bases of their own) goes without it
                opts = replace(opts, stationary_blend=0.0)
            else:
                raise ParameterError(
                    "stationary_blend needs a separation into two sources (a target and the "
                    f"rest), this one has {len(names)} ({', '.join(names)})"
                )
        blend_bands = None
        if opts.cluster_blend:
            freqs = config.frequencies(sr)
            blend_bands = tuple(analysis_bands(freqs, n) for n in defaults.CLUSTER_BLEND_BANDS)
        return cls(
            names=tuple(names),
            sr=sr,
            channels=channels,
            model_sr=int(model.sr),
            config=config,
            W=W,
            n_modelled=n_modelled,
            context=int(model.context),
            labels=labels.astype(np.int64),
            options=opts,
            beta=float(model.beta if opts.beta is None else opts.beta),
            l1=float(opts.l1 or 0.0),
            block_frames=_block_frames(opts.block_seconds, config, sr, channels),
            components=components,
            window=window,
            window_sq=window_sq,
            bands=bands,
            W_analysis=W_analysis,
            W_recon=W_recon,
            percussive_share=shares,
            refiner=refiner,
            blend_bands=blend_bands,
        )

    @property
    def n_sources(self) -> int:
        return len(self.names)

    @property
    def free_components(self) -> int:
        return int(self.options.free_components or 0)

    @property
    def extra_frames(self) -> int:
        """Frames of context each side of a block: the stacked columns of the block's frames
        reach ``context // 2`` frames out, and un-stacking those columns another ``context // 2``,
        so results are exact across block boundaries. The harmonic/percussive prior's median
        filters reach ``KERNEL // 2`` frames out."""
        if self.percussive_share is not None:
            from nmfsep.hpss import KERNEL

            return max(self.context - 1, KERNEL // 2)
        return self.context - 1

    @property
    def latency(self) -> int:
        """Samples between an input sample arriving and its separated samples coming out (the
        most, at the start of a block): a block's frames, its look-ahead frames and one window."""
        hop = self.config.hop_length
        return (self.block_frames - 1 + self.extra_frames) * hop + self.config.n_fft

    def initial_free_bases(self) -> np.ndarray | None:
        """Seeded initial free bases (semi-supervised), independent of the input's level."""
        if not self.free_components:
            return None
        rng = np.random.default_rng(self.options.seed)
        grid = self.W if self.W_analysis is None else self.W_analysis  # where they are learned
        W = rng.uniform(0.5, 1.5, size=(grid.shape[0], self.free_components))
        # As long as the model's bases (their median L2 norm): free bases that start larger
        # take most of the initial activations and absorb the modelled sources (measured: a
        # voice in hiss at 32 dB with matched norms, 8 dB with 25x larger free bases).
        norm = float(np.median(np.linalg.norm(grid, axis=0))) or 1.0
        W *= norm / np.linalg.norm(W, axis=0)
        return W.astype(np.float32)

    def settings(self) -> dict[str, Any]:
        """JSON-able record of what is used (for ``--verbose``, ``--json`` and logs)."""
        o = self.options
        return {
            "sr": self.sr,
            "model_sr": self.model_sr,
            "stft": self.config.to_dict(),
            "beta": self.beta,
            "components": dict(self.components),
            "context": self.context,
            "mask_power": o.mask_power,
            "l1": self.l1,
            "max_iter": o.max_iter,
            "tol": o.tol,
            "seed": o.seed,
            "analysis_bands": None if self.bands is None else int(self.bands.size),
            "phase_iters": o.phase_iters,
            **({"continuity": o.continuity} if o.continuity else {}),
            **(
                {"continuity_source": o.continuity_source}
                if o.continuity and o.continuity_source is not None
                else {}
            ),
            **(
                {"free_source": o.free_source}
                if self.free_components and o.free_source is not None
                else {}
            ),
            **({"atten_lim": o.atten_lim} if o.atten_lim is not None else {}),
            **({"gain": o.gain} if o.gain != defaults.GAIN else {}),
            **({"hpss_prior": o.hpss_prior} if self.percussive_share is not None else {}),
            **({"refine": o.refine} if self.refiner is not None else {}),
            **({"cluster_blend": o.cluster_blend} if self.blend_bands is not None else {}),
            **({"stationary_blend": o.stationary_blend} if o.stationary_blend else {}),
            **(
                {"frame_balance": o.frame_balance}
                if self.free_components and o.frame_balance
                else {}
            ),
        }


# ------------------------------------------------------------------------------ one block


@dataclass
class BlockResult:
    """The separated samples of frames ``[j0, j0 + n_frames)`` (overlap-added, not normalised).

    ``y`` has shape (n_sources, channels, (n_frames - 1) * hop + n_fft) and starts at padded
    position ``j0 * hop``; ``wss`` is the summed squared window of the same frames (the
    normaliser); ``masks`` (when asked for) has shape (n_sources, n_freq, n_frames).
    """

    j0: int
    n_frames: int
    y: np.ndarray
    n_iter: int
    converged: bool
    W_free: np.ndarray | None
    wss: np.ndarray
    masks: np.ndarray | None = None


#: Iterations between the NMF's convergence checks when separating (``fit_nmf``'s
#: ``check_every``).
_CHECK_EVERY = 10


def limit_attenuation(masks: np.ndarray, atten_lim: float) -> np.ndarray:
    """``--atten-lim``, in place: the first source's mask is floored at ``10^(-atten_lim/20)``
    and the other masks are scaled down by the same factor, so the masks still sum to one."""
    floor = np.float32(10.0 ** (-atten_lim / 20.0))
    first = masks[0]
    lifted = np.maximum(first, floor)
    rest = np.float32(1.0) - first
    scale = np.where(rest > 0, (np.float32(1.0) - lifted) / np.where(rest > 0, rest, 1), 0)
    masks[1:] *= scale.astype(masks.dtype, copy=False)
    masks[0] = lifted
    return masks


def fit_masks(
    plan: SeparationPlan, V: np.ndarray, W_free: np.ndarray | None
) -> tuple[np.ndarray, Any]:
    """Soft masks of each source for a block's magnitudes ``V`` (n_freq, n_frames).

    Activations are fitted on the context-stacked, unit-mean magnitudes of the modelled bins
    with the model's bases fixed (and free bases learned), each source's part ``W_i H_i`` is
    un-stacked to one spectrum per frame, and the Wiener masks ``M_i = P_i^p / sum_j P_j^p`` are
    taken; bins above the modelled ones continue the top modelled bin's masks.

    Returns
    -------
    masks : np.ndarray, shape (n_sources, n_freq, n_frames)
    result : NMFResult
    """
    o = plan.options
    if W_free is None and plan.free_components:
        W_free = plan.initial_free_bases()
    # The masks do not depend on the level of V, but the L1 penalty does. With all bases fixed,
    # frames are independent: each is brought to unit mean, so ``l1`` asks every frame for the
    # same relative sparsity whatever the recording's level or a frame's loudness, and a frame's
    # result does not depend on the other frames (streaming is exact). With learned bases the
    # frames are coupled: the block is brought to unit mean as a whole (the loud frames weigh
    # most in what the free bases learn), or frame by frame as far as ``frame_balance`` says.
    balance = 1.0 if W_free is None else float(o.frame_balance or 0.0)
    Vm = _unit_mean(V[: plan.n_modelled], balance=balance)
    fixed: np.ndarray | bool = True
    bands = plan.bands if plan.W_analysis is not None else None
    W_fit = plan.W if plan.W_analysis is None else plan.W_analysis
    n_fixed = plan.W.shape[1]
    if W_free is not None:
        W_fit = np.concatenate([W_fit, W_free], axis=1)
        fixed = np.arange(W_fit.shape[1]) < n_fixed
    V_fit = Vm
    if bands is not None:
        # activations on the band sums (each frame keeps its unit mean per original bin, so
        # the penalty means the same); masks below from the full-resolution bases
        V_fit = np.add.reduceat(Vm, bands, axis=0)
    # Temporal continuity (Virtanen 2007) on every basis, or on one source's (its free bases
    # included): it couples the block's frames, so it holds inside the block only
    max_iter = o.max_iter or defaults.SEPARATE_ITER  # resolved: never None here
    rows = None
    if o.continuity and o.continuity_source is not None:
        rows = plan.labels == plan.names.index(o.continuity_source)
    result = fit_nmf(
        stack_frames(V_fit, plan.context),
        W=W_fit,
        fixed_W=fixed,
        beta=plan.beta,
        l1_H=plan.l1,
        continuity=float(o.continuity or 0.0),
        continuity_rows=rows,
        max_iter=max_iter,
        tol=o.tol,
        check_every=_CHECK_EVERY,
        random_state=o.seed,
        # with no more iterations than between two checks the stopping rule cannot fire, and
        # the objective (two evaluations and their constants) would cost 14 % of the built-in
        # path (7 iterations) for nothing
        compute_loss=o.tol > 0 and max_iter > _CHECK_EVERY,
    )
    parts = np.empty((plan.n_sources, plan.n_modelled, V.shape[1]), dtype=np.float32)
    # masks from the full-resolution bases (the reconstruction bases of a discriminative model)
    W_mask = plan.W if plan.W_recon is None else plan.W_recon
    for i in range(plan.n_sources):
        cols = np.flatnonzero(plan.labels == i)
        fixed_cols = cols[cols < n_fixed]
        parts[i] = unstack_frames(W_mask[:, fixed_cols] @ result.H[fixed_cols], plan.context)
        free_cols = cols[cols >= n_fixed]
        if free_cols.size:
            free = unstack_frames(result.W[:, free_cols] @ result.H[free_cols], plan.context)
            if bands is not None:
                # a band's part spread over its bins like the mixture's magnitude
                width = np.diff(np.r_[bands, plan.n_modelled])
                share = Vm / np.repeat(np.maximum(V_fit, np.finfo(np.float32).tiny), width, 0)
                free = np.repeat(free, width, axis=0) * share
            parts[i] = free if not fixed_cols.size else parts[i] + free
    masks = wiener_masks(parts, power=float(o.mask_power or defaults.MASK_POWER))
    if plan.percussive_share is not None:
        from nmfsep.hpss import percussive_mask, tilt_masks

        # the harmonic/percussive prior (FitzGerald 2010 HPSS as a second expert)
        percussive = percussive_mask(V[: plan.n_modelled])
        masks = tilt_masks(masks, percussive, plan.percussive_share, strength=o.hpss_prior or 0.0)
    n_freq = plan.config.n_freq
    if plan.n_modelled < n_freq:
        top = masks[:, -1:, :]
        masks = np.concatenate([masks, np.repeat(top, n_freq - plan.n_modelled, axis=1)], axis=1)
    if o.gain == "tracked":
        from nmfsep.tracking import tracked_masks

        # the first source's gain from the NMF and a noise tracker together (nmfsep.tracking)
        masks = tracked_masks(masks, V, hop_seconds=plan.config.hop_length / plan.sr)
    if plan.refiner is not None:
        from nmfsep.refine import refine_masks

        # the learned refiner blended into the first source's mask (nmfsep.refine)
        masks = refine_masks(
            masks,
            V,
            plan.refiner,
            sr=plan.sr,
            n_fft=plan.config.n_fft,
            hop_seconds=plan.config.hop_length / plan.sr,
            weight=float(o.refine or 0.0),
        )
    if plan.blend_bands is not None:
        from nmfsep.blend import cluster_blend

        # the model's first source blended with the block's own clustered estimate of it
        masks = cluster_blend(
            masks, V, weight=float(o.cluster_blend or 0.0), bands=plan.blend_bands, seed=o.seed
        )
    if o.atten_lim is not None:
        limit_attenuation(masks, o.atten_lim)
    return masks, result


def separate_block(
    plan: SeparationPlan,
    x: np.ndarray,
    j0: int,
    lead: int,
    n_frames: int,
    W_free: np.ndarray | None = None,
    *,
    keep_masks: bool = False,
) -> BlockResult:
    """Separate frames ``[j0, j0 + n_frames)`` from samples ``x`` that cover them and ``lead``
    frames before them and some after (the context that frame stacking needs).

    Parameters
    ----------
    plan : SeparationPlan
    x : np.ndarray, shape (channels, (n_all - 1) * hop + n_fft), float32
        Samples of frames ``[j0 - lead, j0 - lead + n_all)``, from the first frame's start.
    W_free : np.ndarray, optional
        Free bases to start from (semi-supervised); the learned ones are returned.
    keep_masks : bool
        Also return the block's masks.
    """
    # Float files far from full scale: separate a scaled copy (the masks do not depend on the
    # level) so that float32 spectra neither overflow nor vanish; scale the result back.
    gain = safe_gain(x)
    if gain != 1.0:
        x = x * np.float32(gain)
    # frames as rows (channels, frames, freq) all along: the FFTs' layout, no complex transposes
    X = stft_rows(x, plan.config, plan.window)
    V = np.abs(X).mean(axis=0, dtype=np.float32).T  # one set of activations for every channel
    masks, result = fit_masks(plan, V, W_free)
    del V
    Ys = None
    if plan.options.phase_iters:
        from nmfsep.phase import misi

        # on all the block's frames (context included): depends only on the block's samples
        Ys = misi(X, masks, x, plan.config, plan.window, plan.window_sq, plan.options.phase_iters)
        Ys = Ys[:, :, lead : lead + n_frames]
    masks = masks[:, :, lead : lead + n_frames]
    X = X[:, lead : lead + n_frames]
    hop, n_fft = plan.config.hop_length, plan.config.n_fft
    L = (n_frames - 1) * hop + n_fft
    y = np.empty((plan.n_sources, X.shape[0], L), np.float32)
    for i in range(plan.n_sources - 1):  # one source at a time bounds the temporaries
        Y = X * np.ascontiguousarray(masks[i].T) if Ys is None else np.ascontiguousarray(Ys[i])
        y[i] = istft_rows(Y, plan.config, plan.window)
        del Y
    del Ys
    # The masks sum to one, so the last source is the mixture's overlap-add (its samples times
    # the summed squared window: the STFT/ISTFT pair reconstructs exactly) minus the others:
    # one inverse FFT fewer per block, and the sources sum to the mixture by construction.
    wss = window_sum(plan.window_sq, n_frames, hop)
    y[-1] = x[:, lead * hop : lead * hop + L] * wss
    y[-1] -= y[:-1].sum(axis=0)
    if plan.options.stationary_blend:
        _stationary_expert(plan, x, lead * hop, y, wss)
    if gain != 1.0:
        y *= np.float32(1.0 / gain)
    n_fixed = plan.W.shape[1]
    return BlockResult(
        j0=j0,
        n_frames=n_frames,
        y=y,
        n_iter=int(result.n_iter),
        converged=bool(result.converged),
        W_free=None if W_free is None else np.ascontiguousarray(result.W[:, n_fixed:]),
        wss=wss,
        masks=np.ascontiguousarray(masks) if keep_masks else None,
    )


def _stationary_expert(
    plan: SeparationPlan, x: np.ndarray, start: int, y: np.ndarray, wss: np.ndarray
) -> None:
    """``stationary_blend``, in place on the block's two sources ``y`` (overlap-added, starting
    at sample ``start`` of ``x``): the first blended in the time domain with the short-window
    decision-directed Wiener filter's estimate by the gate's weight (:mod:`nmfsep.stationary`),
    the second the rest."""
    from nmfsep import stationary

    L = y.shape[-1]
    mix = x[:, start : start + L]
    # what the separation removed, normalised by the block's own window sum (floored: at the
    # block's outer edges, which its neighbours overlap, the sum fades to zero); the gate looks
    # at the samples the block's own frames cover fully
    top = float(wss.max())
    removed = y[1] / np.maximum(wss, np.float32(0.05 * top))
    core = np.flatnonzero(wss >= np.float32(0.5 * top))
    estimate, weight, _ = stationary.stationary_expert(
        mix,
        removed,
        sr=plan.sr,
        weight=float(plan.options.stationary_blend or 0.0),
        core=(int(core[0]), int(core[-1]) + 1),
    )
    if estimate is not None:
        y[0] *= np.float32(1.0 - weight)
        y[0] += np.float32(weight) * estimate * wss
        y[1] = mix * wss - y[0]


# ------------------------------------------------------------------------------ the block runner


class Framer:
    """Input samples in padded coordinates, cut into blocks of ``block_frames`` STFT frames at
    fixed frame positions, each with up to ``extra`` frames of context on both sides."""

    def __init__(self, config: STFTConfig, channels: int, block_frames: int, extra: int) -> None:
        self.channels, self.block_frames, self.extra = channels, block_frames, extra
        self.hop, self.n_fft = config.hop_length, config.n_fft
        self.pad = self.n_fft // 2
        self.buf = np.zeros((channels, self.pad), np.float32)  # zeros before the start
        self.pending: list[np.ndarray] = []
        self.buf_start = 0  # padded position of buf[:, 0]
        self.n_in = 0  # input samples received
        self.j0 = 0  # first frame not yet handed out
        self.n: int | None = None  # total input samples, once the end is known

    def push(self, x: np.ndarray) -> None:
        if x.shape[1]:
            self.pending.append(x)  # joined only when a block is due: tiny chunks stay cheap
            self.n_in += x.shape[1]

    def _join(self) -> None:
        if self.pending:
            self.buf = np.concatenate([self.buf, *self.pending], axis=1)
            self.pending = []

    def end(self) -> None:
        self.n = self.n_in

    def blocks(self) -> Iterator[tuple[int, int, int, np.ndarray]]:
        """Blocks ``(j0, j1, lead, samples)`` that can be processed now: frames ``[j0, j1)``, and
        the samples of frames ``[j0 - lead, j1 + trail)`` from the first one's start."""
        B, extra, hop, n_fft = self.block_frames, self.extra, self.hop, self.n_fft
        while True:
            j0 = self.j0
            j1, jr = j0 + B, j0 + B + extra
            if self.n is None:
                # interior block: every frame up to jr - 1 exists once its last sample is in
                if self.pad + self.n_in < (jr - 1) * hop + n_fft:
                    return
            else:
                total = 1 + self.n // hop if self.n else 0
                j1, jr = min(j1, total), min(jr, total)
                if j1 <= j0:
                    return
            jl = max(0, j0 - extra)
            self._join()
            x = self._get(jl * hop, (jr - 1) * hop + n_fft)
            self.j0 = j1
            # forget what no later block needs: it starts at frame j1 - extra
            self._drop(max(0, j1 - extra) * hop)
            yield j0, j1, j0 - jl, x

    def _get(self, start: int, stop: int) -> np.ndarray:
        out = np.zeros((self.channels, stop - start), np.float32)
        a, b = start - self.buf_start, min(stop - self.buf_start, self.buf.shape[1])
        if b > a:
            out[:, : b - a] = self.buf[:, a:b]
        return out

    def _drop(self, start: int) -> None:
        k = start - self.buf_start
        if k > 0:
            self.buf = self.buf[:, k:]
            self.buf_start = start


class _Output:
    """Running overlap-add of the blocks' outputs, in padded coordinates."""

    def __init__(self, plan: SeparationPlan) -> None:
        self.plan = plan
        self.hop, self.pad = plan.config.hop_length, plan.config.n_fft // 2
        self.y = np.zeros((plan.n_sources, plan.channels, 0), np.float32)
        self.wss = np.zeros(0, np.float32)
        self.start = 0  # padded position of y[..., 0]
        self.written = 0  # output samples handed out so far
        self.frames_done = 0

    def add(self, out: BlockResult, n_total: int | None) -> np.ndarray:
        """Add a block (blocks come in order); the output samples now final,
        shape (n_sources, channels, m)."""
        a = out.j0 * self.hop - self.start
        L = out.y.shape[-1]
        if a + L > self.y.shape[-1]:
            grown = np.zeros((*self.y.shape[:2], a + L), np.float32)
            grown[..., : self.y.shape[-1]] = self.y
            wss = np.zeros(a + L, np.float32)
            wss[: self.wss.size] = self.wss
            self.y, self.wss = grown, wss
        self.y[..., a : a + L] += out.y
        self.wss[a : a + L] += out.wss
        self.frames_done = out.j0 + out.n_frames
        # padded samples before frames_done * hop get no more contributions
        stop = self.frames_done * self.hop - self.pad
        if n_total is not None and self.frames_done >= 1 + n_total // self.hop:
            stop = n_total
        stop = max(stop, self.written)
        lo = self.written + self.pad - self.start
        hi = stop + self.pad - self.start
        y = normalise(self.y[..., lo:hi], self.wss[lo:hi])
        self.written = stop
        self.y = np.ascontiguousarray(self.y[..., hi:])
        self.wss = np.ascontiguousarray(self.wss[hi:])
        self.start += hi
        return y


class Separator:
    """Separate a stream of audio pushed in chunks of any size — live, embedded, or a file.

    ``process(chunk)`` returns the samples of each source that are final so far, ``flush()``
    the rest. Concatenated, the outputs are the same whatever the chunking (blocks are cut at
    fixed frame positions), and the same as the file command's (it uses this object).

    Parameters
    ----------
    model : NMFModel, optional
        Default: the built-in model (:func:`nmfsep.model.default_model`).
    sr : int
        Sample rate of the input.
    channels : int
        Channels of the input.
    options : SeparateOptions, optional
        Or give its fields as keyword arguments (``l1=0.5, free_components=4, ...``).
    n_threads : int
        Blocks separated in parallel (supervised separation), each with one BLAS thread.
    keep_masks : bool
        Keep every block's masks (:attr:`masks` after :meth:`flush`; memory grows with length).

    Examples
    --------
    >>> sep = Separator(sr=16000, block_seconds=1.0)          # doctest: +SKIP
    >>> for chunk in stream:                                  # doctest: +SKIP
    ...     out = sep.process(chunk)        # {"speech": array, "noise": array}
    >>> rest = sep.flush()                                    # doctest: +SKIP
    """

    def __init__(
        self,
        model: NMFModel | None = None,
        *,
        sr: int,
        channels: int = 1,
        options: SeparateOptions | None = None,
        n_threads: int = 1,
        keep_masks: bool = False,
        **overrides: Any,
    ) -> None:
        if model is None:
            from nmfsep.model import default_model

            model = default_model()
        opts = options_from(SeparateOptions, options, overrides)
        self.plan = SeparationPlan.create(model, sr=sr, channels=channels, options=opts)
        from nmfsep.validation import check_int

        self.n_threads = check_int("n_threads", n_threads, low=1, high=256)
        self.keep_masks = bool(keep_masks)
        self.progress: Callable[[int, int], None] | None = None
        self.reset()

    # -- public API

    @property
    def names(self) -> tuple[str, ...]:
        """Output sources, in order."""
        return self.plan.names

    @property
    def latency(self) -> int:
        """Most samples an input sample waits before its output is returned (see
        :attr:`SeparationPlan.latency`); lower it with a smaller ``block_seconds``."""
        return self.plan.latency

    @property
    def settings(self) -> dict[str, Any]:
        """The settings used, with the iterations and convergence of the blocks run so far."""
        plan = self.plan
        return {
            **plan.settings(),
            "n_iter": self.n_iter,
            "converged": self.converged,
            "streaming": {
                "block_seconds": round(plan.block_frames * plan.config.hop_length / plan.sr, 3),
                "blocks": self.n_blocks,
                "threads": 1 if plan.free_components else self.n_threads,
                **({"online_free_bases": True} if plan.free_components else {}),
            },
        }

    @property
    def samples_in(self) -> int:
        """Input samples pushed so far (per channel)."""
        return self._framer.n_in

    def reset(self) -> None:
        """Forget the stream: the next :meth:`process` starts a new one."""
        plan = self.plan
        self._framer = Framer(plan.config, plan.channels, plan.block_frames, plan.extra_frames)
        self._output = _Output(self.plan)
        self._W_free = self.plan.initial_free_bases()
        self._masks: list[np.ndarray] = []
        self._ndim = 2
        self.n_iter = 0
        self.converged = True
        self.n_blocks = 0

    def process(self, samples: np.ndarray) -> dict[str, np.ndarray]:
        """Push samples; return each source's samples that are final so far.

        Parameters
        ----------
        samples : np.ndarray, shape (n,) or (n, channels)

        Returns
        -------
        dict of str to np.ndarray, each shape (m,) or (m, channels) like the input
        """
        x = self._as_channels_first(samples)
        return self._as_user(self.push(x))

    def flush(self) -> dict[str, np.ndarray]:
        """End the stream: the remaining samples of each source. Then :meth:`reset` for a new
        stream."""
        return self._as_user(self.finish())

    @property
    def masks(self) -> dict[str, np.ndarray]:
        """Masks of the frames separated so far, shape (n_freq, n_frames) per source
        (``keep_masks=True`` only)."""
        if not self._masks:
            return {}
        m = np.concatenate(self._masks, axis=-1)
        return {name: m[i] for i, name in enumerate(self.names)}

    # -- channels-first API (the file and array paths)

    def push(self, x: np.ndarray) -> np.ndarray:
        """As :meth:`process`, for channels-first float32 samples (channels, n); returns
        (n_sources, channels, m)."""
        if self._framer.n is not None:
            raise ParameterError("this stream was flushed: call reset() to start a new one")
        if x.ndim != 2 or x.shape[0] != self.plan.channels:
            raise ParameterError(
                f"expected samples of {self.plan.channels} channel(s), got shape {x.shape}"
            )
        if x.size and not np.isfinite(x).all():
            raise ParameterError("audio contains NaN or infinite samples")
        self._framer.push(np.ascontiguousarray(x, dtype=np.float32))
        return self._run()

    def finish(self) -> np.ndarray:
        """As :meth:`flush`, channels first."""
        if self._framer.n is None:
            if self._framer.n_in == 0:
                raise ParameterError("no audio was given: nothing to separate")
            self._framer.end()
        return self._run()

    # -- internals

    def _run(self) -> np.ndarray:
        blocks = list(self._framer.blocks())
        outs: list[np.ndarray] = []
        if blocks:
            from threadpoolctl import threadpool_limits

            with threadpool_limits(1):
                for result in self._separate(blocks):
                    outs.append(self._output.add(result, self._framer.n))
                    if self.progress is not None:
                        self.progress(self.n_blocks, self._output.frames_done)
        if not outs:
            return np.zeros((self.plan.n_sources, self.plan.channels, 0), np.float32)
        return outs[0] if len(outs) == 1 else np.concatenate(outs, axis=-1)

    def _separate(self, blocks: list[tuple[int, int, int, np.ndarray]]) -> Iterator[BlockResult]:
        plan = self.plan

        def one(block: tuple[int, int, int, np.ndarray], W_free: np.ndarray | None) -> BlockResult:
            j0, j1, lead, x = block
            return separate_block(plan, x, j0, lead, j1 - j0, W_free, keep_masks=self.keep_masks)

        if plan.free_components or self.n_threads == 1 or len(blocks) == 1:
            for block in blocks:  # in order: each block starts from the previous free bases
                result = one(block, self._W_free)
                self._W_free = result.W_free
                yield self._note(result)
            return
        with ThreadPoolExecutor(min(self.n_threads, len(blocks))) as pool:
            for result in pool.map(lambda b: one(b, None), blocks):
                yield self._note(result)

    def _note(self, result: BlockResult) -> BlockResult:
        self.n_iter = max(self.n_iter, result.n_iter)
        self.converged = self.converged and result.converged
        self.n_blocks += 1
        if result.masks is not None:
            self._masks.append(result.masks)
        return result

    def _as_channels_first(self, samples: np.ndarray) -> np.ndarray:
        a = np.asarray(samples)
        if a.ndim == 1:
            a = a[:, np.newaxis]
            self._ndim = 1 if self.plan.channels == 1 else 2
        elif a.ndim == 2:
            self._ndim = 2
        else:
            raise ParameterError(f"samples must have shape (n,) or (n, channels), got {a.shape}")
        if not (np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer)):
            raise ParameterError(f"samples must be real numbers, got dtype {a.dtype}")
        if a.shape[1] != self.plan.channels:  # said in the caller's layout, not push()'s
            c = self.plan.channels
            shapes = "(n,) or (n, 1)" if c == 1 else f"(n, {c})"
            raise ParameterError(
                f"expected samples of {c} channel(s), shape {shapes}; got {np.shape(samples)}"
            )
        return np.ascontiguousarray(a.T, dtype=np.float32)

    def _as_user(self, y: np.ndarray) -> dict[str, np.ndarray]:
        out = {}
        for i, name in enumerate(self.names):
            yi = y[i].T  # (m, channels)
            out[name] = np.ascontiguousarray(yi[:, 0] if self._ndim == 1 else yi)
        return out
