"""Typed options of the three jobs nmfsep does: separate, cluster, train.

Each is a frozen dataclass whose fields are checked (and normalised: a beta name becomes its
number) in one place, ``__post_init__``, so a value that reaches the engine is valid. The command
line builds one of these from its flags and makes one library call with it; Python users pass
one, or its fields as keyword arguments (``Separator(model, sr=..., l1=0.5)``).

Defaults come from :mod:`nmfsep.defaults`. ``None`` means "the documented automatic choice"
(for example ``SeparateOptions.beta=None``: the model's beta).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, TypeVar

from nmfsep import defaults, limits
from nmfsep.errors import ParameterError
from nmfsep.validation import (
    check_choice,
    check_int,
    check_number,
    check_odd,
    check_seed,
    parse_beta,
)

#: Largest counts an option may ask for (memory: bases x frames x 4 bytes per block): the
#: one table, :mod:`nmfsep.limits`.
MAX_COMPONENTS = limits.MAX_COMPONENTS
MAX_FREE_COMPONENTS = limits.MAX_FREE_COMPONENTS
MAX_CONTEXT = limits.MAX_CONTEXT
MAX_ITER = 100_000
MAX_N_FFT = limits.MAX_N_FFT
MAX_CLUSTER_FRAMES = 200_000
MAX_PHASE_ITERS = 1000
#: Largest exponent of the harmonic/percussive prior (:mod:`nmfsep.hpss`); measured best 2-3.
MAX_HPSS_PRIOR = 10.0
#: Block lengths beyond this are no longer "bounded memory" (seconds).
MAX_BLOCK_SECONDS = 3600.0

T = TypeVar("T")


def _set(obj: object, name: str, value: Any) -> None:
    object.__setattr__(obj, name, value)


def _opt_beta(value: Any) -> float | None:
    return None if value is None else parse_beta(value)


def _check_beta_range(beta: float | None) -> None:
    if beta is not None and abs(beta) > limits.MAX_ABS_BETA:
        raise ParameterError(
            f"beta must be in [-{limits.MAX_ABS_BETA:g}, {limits.MAX_ABS_BETA:g}], got {beta:g}"
        )


def _first(*values: Any) -> Any:
    """The first value that is not None."""
    return next((v for v in values if v is not None), None)


def _hpss_strength(value: Any) -> float:
    return check_number("hpss_prior", value, low=0, high=MAX_HPSS_PRIOR)


def _opt_block_seconds(value: Any) -> float | None:
    if value is None:
        return None
    return check_number("block_seconds", value, low=0, low_open=True, high=MAX_BLOCK_SECONDS)


@dataclass(frozen=True)
class SeparateOptions:
    """How a mixture is separated with a model (supervised, or semi-supervised).

    Parameters
    ----------
    mask_power : float, optional
        ``p`` of the Wiener masks ``M_i = P_i^p / sum_j P_j^p`` (> 0).
    free_components : int, optional
        Extra bases learned on the mixture itself (semi-supervised), written as ``residual`` —
        or, with ``free_source``, counted as that source of the model (adaptation).
    free_source : str, optional
        The model source the free bases adapt (e.g. ``"noise"``: noise the model has not
        heard); None: they are a source of their own, ``residual``.

    ``mask_power``, ``free_components`` and ``free_source`` left at None take the model's
    recommendation (its ``metadata["separation"]``: the built-in model recommends 4 free noise
    bases, p = 1, the tracked gain, every bin, 7 iterations, its refiner at 0.5, the cluster
    blend at 0.5, the stationary expert at 0.7, every frame at unit mean and L1 0.75, measured
    on held-out folds),
    else the defaults (p = 2, no free bases, the Wiener gain, 256 bands, 20 iterations).
    beta : float or str, optional
        Divergence of the activation fit; default the model's.
    l1 : float, optional
        L1 (sparsity) penalty on the activations, each frame at unit mean level; default
        :data:`~nmfsep.defaults.SEPARATE_L1`, or 0 with free bases.
    max_iter : int, optional
        Activation iterations per block. None: the model's recommendation, else
        :data:`~nmfsep.defaults.SEPARATE_ITER`.
    tol : float
        Relative tolerance of the stopping rule.
    seed : int, optional
        Seed of the free bases' initialisation.
    block_seconds : float, optional
        Audio per block (memory is bounded by the block, not the file); default automatic
        (10-60 s, :func:`nmfsep.engine.auto_block_frames`).
    analysis_bands : int, optional
        Infer the activations on about this many ERB-spaced bands instead of every bin
        (:func:`nmfsep.engine.analysis_bands`; masks stay full resolution); 0: every bin.
        None: the model's recommendation, else :data:`~nmfsep.defaults.ANALYSIS_BANDS`. Used
        with free bases only when they adapt a model source (``free_source``).
    atten_lim : float, optional
        Strength limit in dB: the first source's mask is at least ``10 ** (-atten_lim / 20)``
        everywhere, so nothing in the mixture is attenuated by more than that in its output;
        the other sources share the rest in proportion, so the sources still sum to the
        mixture. None: no limit.
    phase_iters : int
        MISI iterations with mixture consistency per block (:func:`nmfsep.phase.misi`); 0: the
        Wiener-masked mixture's phase.
    continuity : float, optional
        Temporal-continuity penalty on the activations (Virtanen 2007; ``continuity`` of
        :func:`nmfsep.nmf.fit_nmf`, which scales it so that it means the same at any level and
        length). It couples the frames of a block, so with it streaming holds continuity inside
        each block only (block boundaries at fixed frame positions, as always). None: the
        model's recommendation, else :data:`~nmfsep.defaults.CONTINUITY`.
    continuity_source : str, optional
        Apply ``continuity`` to this source's bases only (free bases that adapt it included);
        None: to every basis. Left at None with ``continuity`` None, the model's recommendation.
    gain : str, optional
        The first source's gain: ``"wiener"`` (the NMF Wiener masks) or ``"tracked"``: the
        decision-directed gain against a noise estimate that blends the NMF one with a
        minimum-statistics tracker by the block's estimated SNR (:mod:`nmfsep.tracking`;
        the built-in model recommends it). None: the model's recommendation, else
        :data:`~nmfsep.defaults.GAIN`.
    hpss_prior : float, optional
        Strength (exponent, 0..10) of the harmonic/percussive prior (:mod:`nmfsep.hpss`,
        FitzGerald 2010): the masks are tilted toward each source's percussive share recorded
        by training. None: the model's recommendation (a model trained with ``hpss_prior``
        recommends its strength), else 0 (off). Needs a model that records the shares.
    refine : float, optional
        Weight ``w`` (0..1) of the model's learned mask refiner (:mod:`nmfsep.refine`) in the
        first source's mask, ``M_mlp^w M_nmf^(1-w)``; 0: off. None: the model's
        recommendation (the built-in model recommends 0.5, measured on held-out folds), else
        0. Needs a model that carries a refiner (the built-in model does).
    cluster_blend : float, optional
        Weight ``w`` (0..1) of a second estimate of the first source, made in every block from
        the block's own bases (:func:`nmfsep.blend.cluster_blend`: NMF of the block's mixture on
        128, 64 and 32 bands, their masks averaged; each basis given to the first source when
        most of its part falls on this separation's first-source share, as ``cluster
        --features guided``): the first source's mask becomes ``(1 - w) M + w M_cluster``,
        the others share the rest. 0: off.
        None: the model's recommendation (the built-in model recommends 0.5, measured on
        held-out folds), else 0.
    stationary_blend : float, optional
        Largest weight ``a`` (0..1) of the stationary-noise expert (:mod:`nmfsep.stationary`):
        in every block whose noise the gate finds stationary (a minimum-statistics tracker
        finds about as much noise as the separation removed), the first source becomes
        ``(1 - a) s + a s_dd`` in the time domain, ``s_dd`` a short-window (32 ms)
        decision-directed Wiener filter's estimate; the rest takes the difference. Two-source
        separations only: asked for with a third source (free bases of their own) it is
        refused, recommended by the model it steps aside. 0: off. None: the model's
        recommendation (the built-in model recommends 0.7, measured on held-out folds), else 0.
    frame_balance : float, optional
        How a block is scaled before its activations are fitted when free bases are learned on
        it (which couples its frames), 0..1: 0 to a mean of 1 as a whole, so that the loud
        frames weigh most (a loud attack can outweigh seconds of quiet noise); 1 every frame to
        a mean of 1, so that every frame counts the same; between, frame ``t`` is divided by
        ``m_t^b m^(1-b)`` (``m_t`` its mean, ``m`` the block's). With fixed bases only, frames
        are independent and always brought to a mean of 1 each. None: the model's
        recommendation unless ``free_components`` is given (like ``l1`` and ``free_source``),
        else 0.
    """

    mask_power: float | None = None
    free_components: int | None = None
    free_source: str | None = None
    beta: float | None = None
    l1: float | None = None
    max_iter: int | None = None
    tol: float = defaults.TOL
    seed: int | None = defaults.SEED
    block_seconds: float | None = None
    analysis_bands: int | None = None
    atten_lim: float | None = None
    phase_iters: int = defaults.PHASE_ITERS
    continuity: float | None = None
    continuity_source: str | None = None
    hpss_prior: float | None = None
    gain: str | None = None
    refine: float | None = None
    cluster_blend: float | None = None
    stationary_blend: float | None = None
    frame_balance: float | None = None

    def __post_init__(self) -> None:
        if self.frame_balance is not None:
            _set(
                self,
                "frame_balance",
                check_number("frame_balance", self.frame_balance, low=0, high=1),
            )
        if self.stationary_blend is not None:
            _set(
                self,
                "stationary_blend",
                check_number("stationary_blend", self.stationary_blend, low=0, high=1),
            )
        if self.cluster_blend is not None:
            _set(
                self,
                "cluster_blend",
                check_number("cluster_blend", self.cluster_blend, low=0, high=1),
            )
        if self.refine is not None:
            _set(self, "refine", check_number("refine", self.refine, low=0, high=1))
        if self.gain is not None:
            _set(self, "gain", check_choice("gain", self.gain, defaults.GAINS))
        if self.hpss_prior is not None:
            _set(self, "hpss_prior", _hpss_strength(self.hpss_prior))
        if self.mask_power is not None:
            _set(
                self,
                "mask_power",
                check_number(
                    "mask_power", self.mask_power, low=0, low_open=True, high=limits.MAX_MASK_POWER
                ),
            )
        if self.free_source is not None and not isinstance(self.free_source, str):
            raise ParameterError(f"free_source must be a source name, got {self.free_source!r}")
        _set(self, "phase_iters", check_int("phase_iters", self.phase_iters, high=MAX_PHASE_ITERS))
        if self.continuity is not None:
            _set(self, "continuity", check_number("continuity", self.continuity, low=0))
        if self.continuity_source is not None and not isinstance(self.continuity_source, str):
            raise ParameterError(
                f"continuity_source must be a source name, got {self.continuity_source!r}"
            )
        if self.atten_lim is not None:
            _set(self, "atten_lim", check_number("atten_lim", self.atten_lim, low=0, high=400))
        if self.analysis_bands is not None:
            bands = check_int("analysis_bands", self.analysis_bands, high=MAX_N_FFT)
            if 0 < bands < 8:
                raise ParameterError(f"analysis_bands must be 0 (every bin) or >= 8, got {bands}")
            _set(self, "analysis_bands", bands)
        if self.free_components is not None:
            _set(
                self,
                "free_components",
                check_int("free_components", self.free_components, high=MAX_FREE_COMPONENTS),
            )
        _set(self, "beta", _opt_beta(self.beta))
        _check_beta_range(self.beta)
        if self.l1 is not None:
            _set(self, "l1", check_number("l1", self.l1, low=0, high=limits.MAX_PENALTY))
        if self.max_iter is not None:
            _set(self, "max_iter", check_int("max_iter", self.max_iter, low=1, high=MAX_ITER))
        _set(self, "tol", check_number("tol", self.tol, low=0))
        _set(self, "seed", check_seed(self.seed))
        _set(self, "block_seconds", _opt_block_seconds(self.block_seconds))

    #: The fields a model may recommend (``metadata["separation"]``).
    RECOMMENDABLE = (
        "mask_power",
        "max_iter",
        "analysis_bands",
        "free_components",
        "free_source",
        "continuity",
        "continuity_source",
        "hpss_prior",
        "gain",
        "refine",
        "cluster_blend",
        "stationary_blend",
        "frame_balance",
        "l1",
    )

    def resolved(self, recommended: dict[str, Any] | None = None) -> SeparateOptions:
        """These options with every field left at None that a model may recommend filled in:
        from ``recommended`` (a model's ``metadata["separation"]``, checked like any option),
        else from the defaults; ``l1`` then gets the model's or its default for this kind of
        separation. ``free_source``, ``l1`` and ``frame_balance`` ride with the model's
        ``free_components``: given a count of your own, they are not the model's."""
        rec = SeparateOptions(**{k: v for k, v in (recommended or {}).items()
                                 if k in self.RECOMMENDABLE})  # fmt: skip
        # the model's free_source rides with its free_components: an explicit count of free
        # bases without a free_source keeps them a source of their own (residual)
        own = self.free_components is not None
        free = _first(self.free_components, rec.free_components, 0)
        source = self.free_source if own else _first(self.free_source, rec.free_source)
        # so do its l1 and frame_balance: they were measured with its free bases (a penalty
        # meant for free bases is not one for fixed bases alone)
        theirs = SeparateOptions() if own else rec
        out = dataclasses.replace(
            self,
            frame_balance=_first(self.frame_balance, theirs.frame_balance, 0.0),
            mask_power=_first(self.mask_power, rec.mask_power, defaults.MASK_POWER),
            free_components=free,
            free_source=source if free else None,
            hpss_prior=_first(self.hpss_prior, rec.hpss_prior, 0.0),
            gain=_first(self.gain, rec.gain, defaults.GAIN),
            refine=_first(self.refine, rec.refine, 0.0),
            cluster_blend=_first(self.cluster_blend, rec.cluster_blend, 0.0),
            stationary_blend=_first(self.stationary_blend, rec.stationary_blend, 0.0),
            max_iter=_first(self.max_iter, rec.max_iter, defaults.SEPARATE_ITER),
            analysis_bands=_first(self.analysis_bands, rec.analysis_bands, defaults.ANALYSIS_BANDS),
        )
        if out.l1 is None:
            # with free bases the penalty pushes the modelled sources into them (measured with
            # the block at unit mean as a whole; the built-in model, every frame at unit mean,
            # recommends its own)
            l1 = defaults.SEMI_SUPERVISED_L1 if free else defaults.SEPARATE_L1
            out = dataclasses.replace(out, l1=_first(theirs.l1, l1))
        if out.continuity is None:
            # the model's continuity_source rides with its continuity, like free_source
            out = dataclasses.replace(
                out,
                continuity=_first(rec.continuity, defaults.CONTINUITY),
                continuity_source=_first(self.continuity_source, rec.continuity_source),
            )
        return out

    def replace(self, **changes: Any) -> SeparateOptions:
        """A copy with some fields changed (checked again)."""
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class ClusterOptions:
    """How a mixture is separated without training: NMF on (a sample of) its frames, k-means on
    the bases, then separation with the clustered bases fixed.

    Parameters
    ----------
    n_sources : int or "auto"
        Clusters (output sources ``source1`` ... ``sourceN``, lowest spectral centroid first).
        ``"auto"`` (stored as 0): 2 to 4, the count with the best silhouette of the bases'
        features (:func:`nmfsep.clustering.choose_n_sources`).
    n_components : int
        Bases learned on the mixture (>= n_sources).
    beta : float or str
        Divergence of the factorisation.
    l1 : float
        L1 penalty on the activations (of the factorisation and the separation pass).
    features : str
        How the bases are grouped: k-means features (:data:`nmfsep.clustering.FEATURES`) or a
        grouping by source (:data:`nmfsep.clustering.GROUPINGS`); default ``"auto"``: guided
        by the built-in model when it hears speech, else ``"mfcc0-or-mod"``.
    mask_power : float
    max_iter : int
        Iterations of the factorisation.
    separate_iter : int
        Iterations of the activations once the bases are fixed (per block).
    tol : float
    seed : int, optional
        Seed of the frame sample, the initialisation and k-means.
    max_frames : int
        Frames the bases are learned on at most (a seeded sample spread over the file).
    window_seconds : float
        STFT window (a power of two in samples, 75 % overlap).
    block_seconds : float, optional
        As in :class:`SeparateOptions`.
    phase_iters : int
        As in :class:`SeparateOptions`.
    factoriser : {"mu", "vb"}
        How the bases are learned: ``"mu"``, multiplicative updates with ``n_components``
        bases; ``"vb"``, variational Bayesian KL-NMF (:mod:`nmfsep.bayes`, Cemgil 2009) run for
        ``n_components`` times 1/4, 1/2, 3/4, 1 and 3/2, keeping the count with the highest
        lower bound (Yang, Hsu & Chien, ISMIR 2014). ``beta`` must then be 1 (KL), and
        ``l1`` applies to the separation pass only (the priors take its place).
    """

    n_sources: int = defaults.CLUSTER_SOURCES
    n_components: int = defaults.COMPONENTS
    beta: float = defaults.BETA
    l1: float = 0.0
    features: str = defaults.CLUSTER_FEATURES
    mask_power: float = defaults.MASK_POWER
    max_iter: int = defaults.TRAIN_ITER
    separate_iter: int = defaults.CLUSTER_SEPARATE_ITER
    tol: float = defaults.TOL
    seed: int | None = defaults.SEED
    max_frames: int = defaults.CLUSTER_FRAMES
    window_seconds: float = defaults.CLUSTER_WINDOW_SECONDS
    block_seconds: float | None = None
    phase_iters: int = defaults.PHASE_ITERS
    factoriser: str = defaults.CLUSTER_FACTORISER

    def __post_init__(self) -> None:
        if self.n_sources == "auto":
            _set(self, "n_sources", 0)
        _set(
            self,
            "n_sources",
            check_int("n_sources", self.n_sources, low=0, high=limits.MAX_CLUSTER_SOURCES),
        )
        if self.n_sources == 1:
            raise ParameterError("n_sources must be 2 or more (or auto): one source is the mixture")
        _set(self, "phase_iters", check_int("phase_iters", self.phase_iters, high=MAX_PHASE_ITERS))
        _set(
            self,
            "n_components",
            check_int("n_components", self.n_components, low=1, high=MAX_COMPONENTS),
        )
        if self.n_components < max(2, self.n_sources):
            raise ParameterError(
                f"n_components ({self.n_components}) must be at least n_sources "
                f"({self.n_sources or 'auto: 2'})"
            )
        _set(self, "beta", parse_beta(self.beta))
        _check_beta_range(self.beta)
        _set(
            self,
            "factoriser",
            check_choice("factoriser", self.factoriser, defaults.CLUSTER_FACTORISERS),
        )
        if self.factoriser == "vb" and self.beta != 1.0:
            # the Gamma-Poisson model of nmfsep.bayes is the KL divergence's (Cemgil 2009)
            raise ParameterError(f"factoriser 'vb' needs beta 1 (KL), got beta {self.beta:g}")
        _set(self, "l1", check_number("l1", self.l1, low=0, high=limits.MAX_PENALTY))
        _set(
            self,
            "features",
            check_choice("features", self.features, defaults.CLUSTER_FEATURE_KINDS),
        )
        _set(
            self,
            "mask_power",
            check_number(
                "mask_power", self.mask_power, low=0, low_open=True, high=limits.MAX_MASK_POWER
            ),
        )
        _set(self, "max_iter", check_int("max_iter", self.max_iter, low=1, high=MAX_ITER))
        _set(
            self,
            "separate_iter",
            check_int("separate_iter", self.separate_iter, low=1, high=MAX_ITER),
        )
        _set(self, "tol", check_number("tol", self.tol, low=0))
        _set(self, "seed", check_seed(self.seed))
        _set(
            self,
            "max_frames",
            check_int("max_frames", self.max_frames, low=1, high=MAX_CLUSTER_FRAMES),
        )
        _set(
            self,
            "window_seconds",
            check_number("window_seconds", self.window_seconds, low=0.001, high=1.0),
        )
        _set(self, "block_seconds", _opt_block_seconds(self.block_seconds))

    def separate_options(self) -> SeparateOptions:
        """The options of the separation pass (the clustered bases fixed)."""
        return SeparateOptions(
            mask_power=self.mask_power,
            beta=self.beta,
            l1=self.l1,
            max_iter=self.separate_iter,
            tol=self.tol,
            seed=self.seed,
            block_seconds=self.block_seconds,
            phase_iters=self.phase_iters,
        )


@dataclass(frozen=True)
class TrainOptions:
    """How a model is learned from clean examples of each source.

    Parameters
    ----------
    n_components : int
        Bases per source.
    beta : float or str
    l1, l2 : float
        Penalties on the activations during training.
    n_fft, hop_length : int, optional
        STFT; default a window of :data:`~nmfsep.defaults.WINDOW_SECONDS` and 75 % overlap.
    context : int
        Frames per basis (odd).
    max_iter : int
    tol : float
    max_frames : int, optional
        Frames per source at most (a seeded sample of the audible ones). Default
        (:func:`nmfsep.training.frame_budget`): :data:`~nmfsep.defaults.TRAIN_FRAMES`, fewer
        where the frames are large (high rates) so that they take at most
        :data:`~nmfsep.defaults.TRAIN_MEMORY`.
    seed : int, optional
    discriminative : bool
        Also learn reconstruction bases that maximise the quality of the masked output on
        synthetic mixtures of the training clips (Weninger et al., Interspeech 2014); the
        activations are still inferred with the ordinary bases. Needs two sources or more.
    hpss_prior : float
        0: off. Else record each source's percussive share (median-filtering HPSS of its
        clips, FitzGerald 2010) in the model, which then recommends this strength of the
        harmonic/percussive prior to every separation (:mod:`nmfsep.hpss`; for music: drums
        vs pitched instruments; measured to cost a little SDR on speech).
    exemplars : int
        Also keep this many of each source's training patches (a seeded sample of the audible
        frames, each scaled to unit norm) as extra bases beside the learned ones: exemplar
        bases (Gemmeke, Virtanen & Hurmalainen, "Exemplar-based sparse representations for
        noise robust automatic speech recognition", IEEE TASLP 19(7), 2011) keep the detail a
        few learned bases average away. No training cost; the separation does more work per
        basis. 0: learned bases only.
    refiner : str, optional
        The name of the source that is speech: attach the shipped learned mask refiner for
        trained speech models (:func:`nmfsep.model.trained_refiner`) to it (it becomes the
        model's first source); the model then recommends ``refine``
        :data:`~nmfsep.defaults.TRAINED_REFINE` to every separation. Needs two sources or
        more. ``"auto"`` (the default): the one source whose name has the word ``speech`` or
        ``voice`` (:func:`nmfsep.training.resolve_refiner`), if there is one, else none.
        ``None`` or ``"none"``: no refiner.
    """

    n_components: int = defaults.COMPONENTS
    beta: float = defaults.BETA
    l1: float = 0.0
    l2: float = 0.0
    n_fft: int | None = None
    hop_length: int | None = None
    context: int = defaults.CONTEXT
    max_iter: int = defaults.TRAIN_ITER
    tol: float = defaults.TOL
    max_frames: int | None = None
    seed: int | None = defaults.SEED
    discriminative: bool = False
    hpss_prior: float = 0.0
    exemplars: int = defaults.EXEMPLARS
    refiner: str | None = defaults.REFINER_AUTO

    def __post_init__(self) -> None:
        _set(self, "hpss_prior", _hpss_strength(self.hpss_prior))
        if not isinstance(self.discriminative, bool):
            raise ParameterError(
                f"discriminative must be True or False, not {self.discriminative!r}"
            )
        if self.refiner is not None and (not isinstance(self.refiner, str) or not self.refiner):
            raise ParameterError(
                f"refiner must be the name of the speech source, not {self.refiner!r}"
            )
        if self.refiner == "none":
            _set(self, "refiner", None)
        _set(
            self,
            "n_components",
            check_int("n_components", self.n_components, low=1, high=MAX_COMPONENTS),
        )
        _set(
            self,
            "exemplars",
            check_int("exemplars", self.exemplars, low=0, high=MAX_COMPONENTS - self.n_components),
        )
        _set(self, "beta", parse_beta(self.beta))
        _check_beta_range(self.beta)
        _set(self, "l1", check_number("l1", self.l1, low=0, high=limits.MAX_PENALTY))
        _set(self, "l2", check_number("l2", self.l2, low=0, high=limits.MAX_PENALTY))
        if self.n_fft is not None:
            _set(self, "n_fft", check_int("n_fft", self.n_fft, low=16, high=MAX_N_FFT))
        if self.hop_length is not None:
            _set(
                self, "hop_length", check_int("hop_length", self.hop_length, low=1, high=MAX_N_FFT)
            )
        _set(self, "context", check_odd("context", self.context, high=MAX_CONTEXT))
        _set(self, "max_iter", check_int("max_iter", self.max_iter, low=1, high=MAX_ITER))
        _set(self, "tol", check_number("tol", self.tol, low=0))
        if self.max_frames is not None:
            _set(
                self,
                "max_frames",
                check_int("max_frames", self.max_frames, low=1, high=MAX_CLUSTER_FRAMES),
            )
        _set(self, "seed", check_seed(self.seed))


def options_from(cls: type[T], options: T | None, overrides: dict[str, Any]) -> T:
    """``options`` (or the defaults) with keyword ``overrides`` applied; unknown names refused.

    ``random_state`` is accepted as another name of ``seed``.
    """
    base = options if options is not None else cls()
    if not overrides:
        return base
    if "random_state" in overrides:  # scikit-learn's name for the seed
        overrides = dict(overrides)
        overrides.setdefault("seed", overrides.pop("random_state"))
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(overrides) - names)
    if unknown:
        raise ParameterError(
            f"unknown option(s) {', '.join(unknown)}; {cls.__name__} has {', '.join(sorted(names))}"
        )
    return dataclasses.replace(base, **overrides)  # type: ignore[type-var]
