"""A model learned from the mixture itself: the first half of ``nmfsep cluster``.

The mixture's bases are learned on a bounded, seeded sample of its STFT frames
(:class:`FrameSampler`, which sees the stream once, block by block), grouped into sources by
k-means on their features (:func:`nmfsep.clustering.cluster_bases`; the bases come from
multiplicative updates or, with ``factoriser="vb"``, from variational Bayes with their number
chosen by the bound, :mod:`nmfsep.bayes`), and returned as an ordinary
:class:`~nmfsep.model.NMFModel` (:func:`cluster_model`). The second half is a supervised
separation with those bases fixed, in the same engine as ``separate``, so memory never grows
with the file's length.

The sample is a uniform random subset of the non-silent frames (each frame gets a seeded random
key; the ``max_frames`` smallest keys are kept), so it spreads over the whole file and does not
depend on how the stream is chunked. Files shorter than ``max_frames`` frames use every frame.

With ``features="guided"`` or ``"auto"`` (the default) the stream also goes through the built-in
speech/noise model (:class:`SpeechGuide`, a :class:`~nmfsep.engine.Separator` in step with the
stream), and the sampler keeps, for every frame it keeps, the model's speech share of that
frame: the bases are then grouped by how much of each one's part falls on speech
(:func:`nmfsep.clustering.group_bases`). ``"auto"`` does so only when the guide hears speech
(:func:`nmfsep.clustering.auto_grouping` of the share of the sampled frames' power), and groups
by ``"mfcc0-or-mod"`` otherwise; the model's record says which (``grouping``,
``speech_share``). Bench: ``bench/README.md``, "Speech-guided grouping" and "`--features auto`".

The same grouping, inside each block of a model's separation, is ``separate --cluster-blend``
(:mod:`nmfsep.blend`).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from nmfsep import defaults
from nmfsep.bayes import VBNMFResult, candidate_components, select_vb_nmf
from nmfsep.engine import Framer, auto_block_frames, default_stft, safe_gain
from nmfsep.errors import ParameterError
from nmfsep.model import NMFModel
from nmfsep.nmf import NMFResult, fit_nmf
from nmfsep.options import ClusterOptions
from nmfsep.spectral import STFTConfig, frames_stft, windows

__all__ = ["FrameSampler", "SpeechGuide", "cluster_model", "factorise", "sample_frames"]


class FrameSampler:
    """Keep a seeded uniform sample of at most ``options.max_frames`` magnitude frames.

    Parameters
    ----------
    sr, channels : int
        Of the stream.
    options : ClusterOptions
        ``max_frames``, ``seed`` and ``window_seconds`` are used.
    guided : bool
        Every :meth:`push` also gives a speech estimate of the same samples; the sampler then
        keeps the speech power share of each kept frame (:meth:`speech_share`).
    """

    def __init__(
        self, *, sr: int, channels: int, options: ClusterOptions, guided: bool = False
    ) -> None:
        self.options = options
        self.config: STFTConfig = default_stft(sr, window_seconds=options.window_seconds)
        self.channels = channels
        self.guided = guided
        width = 2 * channels if guided else channels  # the estimate rides as extra channels
        block = auto_block_frames(self.config, sr, width)
        self._framer = Framer(self.config, width, block, 0)
        self._window = windows(self.config)[0]
        self._rng = np.random.default_rng(options.seed)
        self._frames = np.zeros((self.config.n_freq, 0), np.float32)
        self._share = np.zeros((self.config.n_freq, 0), np.float32)
        self._keys = np.zeros(0)
        self._index = np.zeros(0, np.int64)
        self.n_frames = 0  # frames seen

    @property
    def samples_in(self) -> int:
        """Input samples pushed so far (per channel)."""
        return self._framer.n_in

    def push(self, x: np.ndarray, speech: np.ndarray | None = None) -> None:
        """Add samples (channels, n); ``guided``: and the speech estimate of the same samples
        (channels, n)."""
        if self.guided:
            if speech is None or speech.shape != x.shape:
                raise ParameterError("a guided sampler needs the speech estimate of every sample")
            x = np.concatenate([x, speech], axis=0)
        self._framer.push(np.ascontiguousarray(x, dtype=np.float32))
        self._take()

    def finish(self) -> np.ndarray:
        """The sample, in time order: shape (n_freq, n_kept)."""
        if self._framer.n is None:
            self._framer.end()
        self._take()
        order = np.argsort(self._index, kind="stable")
        return np.ascontiguousarray(self._frames[:, order])

    def speech_share(self) -> np.ndarray:
        """``guided``, after :meth:`finish`: the speech power share of the kept frames
        ``|S|^2 / (|S|^2 + |X - S|^2)`` (S the estimate's STFT, X the mixture's; summed over
        channels), in time order: shape (n_freq, n_kept), values in [0, 1]."""
        if not self.guided:
            raise ParameterError("this sampler was not given a speech estimate")
        order = np.argsort(self._index, kind="stable")
        return np.ascontiguousarray(self._share[:, order])

    def _take(self) -> None:
        c = self.channels
        for j0, j1, _, x in self._framer.blocks():
            # level does not matter to the factorisation: spectra of a scaled copy are finite
            gain = safe_gain(x)
            S = frames_stft(x * np.float32(gain), self.config, self._window)
            V = np.abs(S[:c]).mean(axis=0, dtype=np.float32)
            keys = self._rng.random(j1 - j0)
            audible = V.sum(axis=0) > 0.0
            self.n_frames += j1 - j0
            frames = np.concatenate([self._frames, V[:, audible]], axis=1)
            all_keys = np.concatenate([self._keys, keys[audible]])
            index = np.concatenate([self._index, np.arange(j0, j1)[audible]])
            share = self._share
            if self.guided:
                p_speech = (np.abs(S[c:]) ** 2).sum(axis=0)
                p_rest = (np.abs(S[:c] - S[c:]) ** 2).sum(axis=0)
                total = p_speech + p_rest
                ratio = np.divide(p_speech, total, out=np.full_like(total, 0.5), where=total > 0)
                share = np.concatenate([share, ratio[:, audible].astype(np.float32)], axis=1)
            k = self.options.max_frames
            if all_keys.size > k:
                keep = np.argpartition(all_keys, k - 1)[:k]
                frames, all_keys, index = frames[:, keep], all_keys[keep], index[keep]
                if self.guided:
                    share = share[:, keep]
            self._frames, self._keys, self._index = frames, all_keys, index
            self._share = share


class SpeechGuide:
    """The built-in model's speech estimate of a stream, in step with it.

    A :class:`~nmfsep.engine.Separator` with the built-in speech/noise model (its default
    settings with 2 free noise bases, without the cluster blend and the stationary expert, as
    the guided grouping was measured); :meth:`push` returns the mixture samples whose estimate
    is final so far, with that estimate (the separator's latency is absorbed by holding the
    mixture back).

    Parameters
    ----------
    sr, channels : int
        Of the stream.
    seed : int, optional
        Of the separation (free bases).
    """

    def __init__(self, *, sr: int, channels: int, seed: int | None = defaults.SEED) -> None:
        from nmfsep.engine import Separator
        from nmfsep.model import default_model

        # the guide is the model's own separation as the guided grouping was measured with it
        # (session 13's settings: 2 free noise bases, no cluster blend, no stationary expert)
        self._sep = Separator(
            default_model(),
            sr=sr,
            channels=channels,
            seed=seed,
            free_components=2,
            free_source="noise",
            cluster_blend=0.0,
            stationary_blend=0.0,
        )
        self._speech = [i for i, n in enumerate(self._sep.names) if n.startswith("speech")]
        self._held: list[np.ndarray] = []

    def push(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Add samples (channels, n); return ``(mixture, speech)``, each (channels, m): the
        samples whose estimate is final, oldest first."""
        x = np.ascontiguousarray(x, dtype=np.float32)
        self._held.append(x)
        return self._match(self._sep.push(x))

    def finish(self) -> tuple[np.ndarray, np.ndarray]:
        """End of the stream: the remaining samples and their estimate."""
        return self._match(self._sep.finish())

    def _match(self, out: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        speech = out[self._speech].sum(axis=0, dtype=np.float32)
        m = speech.shape[1]
        held = np.concatenate(self._held, axis=1) if len(self._held) > 1 else self._held[0]
        mix, rest = held[:, :m], held[:, m:]
        self._held = [rest]
        return mix, speech


def sample_frames(
    chunks: Iterable[np.ndarray], *, sr: int, channels: int, options: ClusterOptions
) -> tuple[np.ndarray, np.ndarray | None, STFTConfig, int]:
    """Sample a stream's frames for :func:`cluster_model` (with ``features="guided"``, through
    a :class:`SpeechGuide` too).

    Parameters
    ----------
    chunks : iterable of np.ndarray, each shape (channels, n)
    sr, channels : int
    options : ClusterOptions

    Returns
    -------
    V : np.ndarray, shape (n_freq, n_kept)
        The sampled magnitude frames (:meth:`FrameSampler.finish`).
    speech : np.ndarray, shape (n_freq, n_kept), or None
        Their speech share (guided only).
    config : STFTConfig
        The frames' STFT.
    n_samples : int
        Samples read (per channel); 0: nothing was sampled.
    """
    guided = options.features in ("guided", "auto")
    sampler = FrameSampler(sr=sr, channels=channels, options=options, guided=guided)
    guide = SpeechGuide(sr=sr, channels=channels, seed=options.seed) if guided else None
    n = 0
    for x in chunks:
        n += x.shape[1]
        if guide is None:
            sampler.push(x)
        elif x.shape[1]:
            sampler.push(*guide.push(x))
    if n == 0:
        return np.zeros((sampler.config.n_freq, 0), np.float32), None, sampler.config, 0
    if guide is not None:
        sampler.push(*guide.finish())
    V = sampler.finish()
    return V, sampler.speech_share() if guided else None, sampler.config, n


def factorise(V: np.ndarray, *, options: ClusterOptions) -> NMFResult | VBNMFResult:
    """The bases (and activations) of the sampled frames, by ``options.factoriser``.

    ``"mu"``: :func:`~nmfsep.nmf.fit_nmf` with ``n_components`` bases. ``"vb"``:
    :func:`~nmfsep.bayes.select_vb_nmf` over :func:`~nmfsep.bayes.candidate_components` of
    ``n_components`` (each at least the number of sources, and at least 2 with
    ``n_sources="auto"``), the count with the highest variational bound kept.

    Parameters
    ----------
    V : np.ndarray, shape (n_freq, n_frames)
    options : ClusterOptions

    Returns
    -------
    NMFResult or VBNMFResult
        ``W`` (n_freq, K) with unit-norm columns, ``H`` (K, n_frames).
    """
    o = options
    if o.factoriser == "vb":
        minimum = max(o.n_sources, max(defaults.CLUSTER_AUTO_SOURCES) if o.n_sources == 0 else 1)
        return select_vb_nmf(
            V,
            candidates=candidate_components(o.n_components, minimum=minimum),
            max_iter=o.max_iter,
            tol=o.tol,
            random_state=o.seed,
        )
    return fit_nmf(
        V,
        n_components=o.n_components,
        beta=o.beta,
        l1_H=o.l1,
        max_iter=o.max_iter,
        tol=o.tol,
        random_state=o.seed,
    )


def cluster_model(
    V: np.ndarray,
    *,
    sr: int,
    config: STFTConfig,
    options: ClusterOptions,
    speech: np.ndarray | None = None,
    allow_silent: bool = True,
) -> NMFModel:
    """Factorise sampled mixture frames, cluster the bases, and make a model of the clusters.

    Parameters
    ----------
    V : np.ndarray, shape (n_freq, n_frames)
        Magnitude frames of the mixture (:class:`FrameSampler`).
    sr : int
    config : STFTConfig
        STFT the frames were taken with.
    options : ClusterOptions
    speech : np.ndarray, shape (n_freq, n_frames), optional
        Speech share of the same frames (:meth:`FrameSampler.speech_share`); needed by
        ``features="guided"`` and ``"auto"``.
    allow_silent : bool
        What a digitally silent mixture (no frame kept) gives: a model whose sources all have
        the same flat basis (``record["silent"]`` is true), so that separating it writes
        silent sources as :func:`~nmfsep.separation.separate` does; with ``False`` (a model
        that is to be saved) a ``ParameterError``.

    Returns
    -------
    NMFModel
        Sources ``source1`` ... ``sourceN`` (lowest spectral centroid first), context 1; its
        ``metadata["training"]["cluster"]`` records what was done.
    """
    from nmfsep.clustering import (
        auto_grouping,
        choose_n_sources,
        group_bases,
        hpss_mask,
        speech_power_share,
    )
    from nmfsep.errors import ParameterError

    o = options
    if V.shape[1] == 0:
        if not allow_silent:
            raise ParameterError("the mixture is silent: there are no bases to learn or save")
        # nothing to learn: equal flat bases split nothing into silent sources (n "auto": 2)
        n_silent = o.n_sources or 2
        names = [f"source{i + 1}" for i in range(n_silent)]
        flat = np.full((V.shape[0], 1), 1.0 / np.sqrt(V.shape[0]), np.float32)
        return NMFModel(
            bases={name: flat.copy() for name in names},
            sr=int(sr),
            stft=config,
            beta=o.beta,
            metadata={
                "training": {
                    "cluster": {
                        "method": "cluster",
                        "silent": True,
                        "n_sources": n_silent,
                        "n_sources_auto": o.n_sources == 0,
                        "frames_used": 0,
                    }
                }
            },
        )
    result = factorise(V, options=o)
    k = int(result.W.shape[1])
    n_sources = o.n_sources
    if n_sources == 0:  # --sources auto
        candidates = tuple(n for n in defaults.CLUSTER_AUTO_SOURCES if n <= k) or (min(k, 2),)
        n_sources = choose_n_sources(
            result.W, candidates=candidates, sr=sr, n_fft=config.n_fft, random_state=o.seed
        )
    features = o.features
    share = None if speech is None else speech_power_share(V, speech)
    if features == "auto" and share is not None:
        features = auto_grouping(share)
    labels = group_bases(
        result.W,
        H=result.H,
        V=V,
        n_clusters=n_sources,
        method=features,
        percussive=hpss_mask(V) if features.endswith("hpss") else None,
        speech=speech,
        sr=sr,
        n_fft=config.n_fft,
        frame_rate=sr / config.hop_length,
        random_state=o.seed,
    )
    names = [f"source{i + 1}" for i in range(n_sources)]
    record = {
        "method": "cluster",
        "n_components": k,
        "n_sources": n_sources,
        "n_sources_auto": o.n_sources == 0,
        "features": o.features,
        "frames_used": int(V.shape[1]),
        "factorise_iter": int(result.n_iter),
        "factorise_converged": bool(result.converged),
        "components": {names[i]: int(np.sum(labels == i)) for i in range(n_sources)},
        "factoriser": o.factoriser,
    }
    if share is not None:  # how much speech the guide heard, and the grouping it led to
        record["speech_share"] = round(share, 4)
        record["grouping"] = features
    if speech is not None and features == "guided":  # which output holds the speech bases
        from nmfsep.clustering import speech_shares

        shares = speech_shares(result.W, result.H, speech)
        means = [float(shares[labels == i].mean()) for i in range(n_sources)]
        record["speech_source"] = names[int(np.argmax(means))]
    bounds = getattr(result, "candidates", None)
    if bounds:  # vb: the lower bound of each number of bases tried
        record["vb_bounds"] = {str(n): round(b, 1) for n, b in bounds.items()}
    return NMFModel(
        bases={names[i]: result.W[:, labels == i].astype(np.float32) for i in range(n_sources)},
        sr=int(sr),
        stft=config,
        beta=o.beta,
        metadata={"training": {"cluster": record}},
    )
