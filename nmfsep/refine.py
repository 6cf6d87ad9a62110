"""A learned mask refiner: the built-in path's last step (pure maths, no I/O).

A speech model learned on other voices fits an unseen voice only roughly, and what the NMF masks
get wrong follows patterns a small regressor can learn from examples: speech energy the free
noise bases took, noise the speech bases explained, both in context. The refiner is a
multi-layer perceptron trained on synthetic mixtures of the training corpus's speakers and
noises to map, for every frame, the mixture's log-mel spectrum and the NMF path's own speech
mask (averaged over the same mel bands), both over ``2 context + 1`` frames, to the ideal ratio
mask ``|S|^2 / (|S|^2 + |N|^2)`` of each mel band — mask estimation by regression in the
manner of Wang, Narayanan & Wang, "On training targets for supervised speech separation",
IEEE/ACM TASLP 22(12), 2014, with the NMF mask as an input feature (stacking). The band mask is
spread back over the bins and blended with the NMF mask geometrically,

    ``M <- M_mlp^w * M_nmf^(1 - w)``  (``w = refine``, 0.5 measured best),

so the NMF keeps the per-bin (harmonic) detail and the two experts correct each other: on the
held-out folds the MLP alone fails on noises unlike any it was trained on where the NMF does
not, and the blend beats both (bench/README.md, "Shipped (session 6)": folds 5.79 -> 6.70 dB
SDRi, dev cases 8.44 -> 9.48). The other sources' masks are scaled so that all still sum to
one: the sources still sum to the mixture.

The mixture's level enters only relative to the mean power of the surrounding ``norm_seconds``
(5 s), so the result does not depend on the recording's level and barely on the block size;
band powers are means over their bins, so the features are the same at any sample rate.
Cost per frame: one (d_in x h) ... (h x n_mels) matrix chain, about 0.7 M multiply-adds for
the built-in model's 800 -> 512 -> 512 -> 80 network (+10 % of the built-in path's CPU).
Training (:func:`fit_refiner`) uses scikit-learn's ``MLPRegressor``; the weights are stored as
plain arrays in the model file (no pickle) and the forward pass here is a few lines of numpy
(tested against scikit-learn's ``predict``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from nmfsep.errors import ModelError
from nmfsep.frames import stack_frames
from nmfsep.limits import MAX_REFINER_WEIGHTS

__all__ = [
    "CONTEXT",
    "NORM_SECONDS",
    "N_MELS",
    "Refiner",
    "features",
    "fit_refiner",
    "mel_filters",
    "refine_masks",
    "targets",
]

#: mel bands of the refiner's features and output
N_MELS = 80
#: frames of context each side
CONTEXT = 2
#: the level reference: mean power over this many seconds around each frame
NORM_SECONDS = 5.0
_TINY = 1e-12


def _hz_to_mel(f: np.ndarray) -> np.ndarray:
    """Slaney's mel scale (linear below 1 kHz, logarithmic above; librosa's default)."""
    f = np.asarray(f, dtype=np.float64)
    lin = f / (200.0 / 3)
    log = 15.0 + np.log(np.maximum(f, 1e-10) / 1000.0) / (np.log(6.4) / 27.0)
    return np.where(f >= 1000.0, log, lin)


def _mel_to_hz(m: np.ndarray) -> np.ndarray:
    m = np.asarray(m, dtype=np.float64)
    lin = m * (200.0 / 3)
    log = 1000.0 * np.exp((np.log(6.4) / 27.0) * (m - 15.0))
    return np.where(m >= 15.0, log, lin)


@lru_cache(maxsize=16)
def mel_filters(
    sr: int, n_fft: int, n_bins: int, n_mels: int, fmax: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mel filterbank on the first ``n_bins`` bins of an ``n_fft`` STFT at ``sr``.

    The triangles of ``librosa.filters.mel(norm=None)`` (Slaney's scale; a test checks they
    are the same), computed here because importing librosa costs about 2 s of start-up on
    every ``nmfsep separate``.

    Returns
    -------
    fb : np.ndarray, shape (n_mels, n_bins), float32
        Triangular (unnormalised, peak 1) filters from 0 Hz to ``fmax``.
    back : np.ndarray, shape (n_bins, n_mels), float32
        Band -> bin: each bin's weighted mean of the bands that cover it.
    covered : np.ndarray of bool, shape (n_bins,)
        Bins some band covers (above ``fmax`` none does).
    """
    top = min(float(fmax), sr / 2)
    edges = _mel_to_hz(np.linspace(0.0, float(_hz_to_mel(np.array(top))), n_mels + 2))
    freqs = np.linspace(0.0, sr / 2, 1 + n_fft // 2)[:n_bins]
    width = np.maximum(np.diff(edges), 1e-9)
    ramps = edges[:, None] - freqs[None, :]
    rising = -ramps[:-2] / width[:-1, None]
    falling = ramps[2:] / width[1:, None]
    fb = np.maximum(0.0, np.minimum(rising, falling))
    weight = fb.sum(axis=0)
    covered = weight > 1e-6
    back = np.where(covered[:, None], fb.T / np.where(covered, weight, 1.0)[:, None], 0.0)
    out = (fb.astype(np.float32), back.astype(np.float32), covered)
    for a in out:  # shared by the cache
        a.setflags(write=False)
    return out


def features(
    P: np.ndarray, mask: np.ndarray, fb: np.ndarray, *, context: int, norm_frames: int
) -> np.ndarray:
    """The refiner's input for every frame.

    Parameters
    ----------
    P : np.ndarray, shape (n_bins, n_frames)
        The mixture's power spectrogram.
    mask : np.ndarray, shape (n_bins, n_frames)
        The NMF path's mask of the target (speech).
    fb : np.ndarray, shape (n_mels, n_bins)
        :func:`mel_filters`.
    context, norm_frames : int
        Frames of context each side; frames of the level reference.

    Returns
    -------
    np.ndarray, shape (n_frames, 2 * n_mels * (2 context + 1)), float32
        Log mean power of each band relative to the local mean power of the bins the bands
        cover, then the band-averaged mask. Means, not sums, over bins: the same features at
        any sample rate and window length (the bands are in Hz).
    """
    from scipy.ndimage import uniform_filter1d

    P = np.asarray(P, dtype=np.float32)
    weight = fb.sum(axis=1, keepdims=True)
    band = fb @ P
    Pm = band / np.maximum(weight, np.float32(_TINY)) + np.float32(_TINY)
    covered = fb.sum(axis=0) > 1e-6
    level = P[covered].mean(axis=0, dtype=np.float64) if covered.any() else P.mean(axis=0)
    ref = uniform_filter1d(level, size=norm_frames, mode="nearest")
    L = np.log(Pm) - np.log(ref + _TINY).astype(np.float32)
    Mm = (fb @ (np.asarray(mask, dtype=np.float32) * P)) / (band + np.float32(_TINY))
    # frame t - context first, the edge frames repeated (the layout of the NMF's patches)
    c = 2 * context + 1
    out = np.concatenate([stack_frames(L, c), stack_frames(Mm, c)], axis=0).T
    return np.ascontiguousarray(out, dtype=np.float32)


def targets(P_target: np.ndarray, P_rest: np.ndarray, fb: np.ndarray) -> np.ndarray:
    """The training target: the ideal ratio mask of every mel band, shape (n_frames, n_mels)."""
    ps = fb @ np.asarray(P_target, dtype=np.float32)
    pr = fb @ np.asarray(P_rest, dtype=np.float32)
    return np.ascontiguousarray((ps / (ps + pr + np.float32(_TINY))).T, dtype=np.float32)


def _flush_subnormal(a: np.ndarray) -> np.ndarray:
    """``a`` with its subnormal entries set to zero (a copy only when there are some)."""
    small = np.abs(a) < np.finfo(a.dtype).tiny
    small &= a != 0
    return np.where(small, a.dtype.type(0), a) if small.any() else a


@dataclass(frozen=True)
class Refiner:
    """A trained refiner: an MLP (ReLU hidden layers, linear output clipped to [0, 1]).

    Parameters
    ----------
    weights, biases : tuple of np.ndarray
        Layer ``l`` maps ``x -> x @ weights[l] + biases[l]``; float32.
    mean, scale : np.ndarray, shape (d_in,)
        Input standardisation ``(x - mean) / scale``.
    n_mels, context : int
        Feature layout (:func:`features`).
    fmax : float
        Top of the mel bands (Hz): the model's Nyquist frequency.
    norm_seconds : float
        Span of the level reference.
    """

    weights: tuple[np.ndarray, ...]
    biases: tuple[np.ndarray, ...]
    mean: np.ndarray
    scale: np.ndarray
    n_mels: int = N_MELS
    context: int = CONTEXT
    fmax: float = 8000.0
    norm_seconds: float = NORM_SECONDS

    def __post_init__(self) -> None:
        n_in = 2 * self.n_mels * (2 * self.context + 1)
        if not 1 <= self.n_mels <= 512 or not 0 <= self.context <= 16:
            raise ModelError(f"refiner: bad layout (n_mels {self.n_mels}, context {self.context})")
        if not (100.0 <= self.fmax <= 1e6 and 0 < self.norm_seconds <= 600):
            raise ModelError(
                f"refiner: bad fmax {self.fmax!r} (100 Hz .. 1 MHz) or norm_seconds "
                f"{self.norm_seconds!r} (0 .. 600 s)"
            )
        if not self.weights or len(self.weights) != len(self.biases):
            raise ModelError("refiner: weights and biases must be as many (at least one layer)")
        d = n_in
        total = 0
        for W, b in zip(self.weights, self.biases, strict=True):
            if W.ndim != 2 or W.shape[0] != d or b.shape != (W.shape[1],):
                raise ModelError(
                    f"refiner: layer shapes do not chain (expected {d} inputs, got {W.shape})"
                )
            d = W.shape[1]
            total += W.size
        if d != self.n_mels:
            raise ModelError(f"refiner: output has {d} values, not n_mels {self.n_mels}")
        if total > MAX_REFINER_WEIGHTS:
            raise ModelError(f"refiner: {total} weights (at most {MAX_REFINER_WEIGHTS})")
        if self.mean.shape != (n_in,) or self.scale.shape != (n_in,):
            raise ModelError(f"refiner: standardisation must have {n_in} values")
        arrays = (*self.weights, *self.biases, self.mean, self.scale)
        if not all(a.dtype == np.float32 and np.isfinite(a).all() for a in arrays):
            raise ModelError("refiner: arrays must be finite float32")
        if (self.scale <= 0).any():
            raise ModelError("refiner: standardisation scales must be positive")
        # Weight decay leaves dead units' weights far below float32's smallest normal number
        # (the built-in network had 78 000 such weights). Every product with a subnormal takes a
        # microcode assist on x86, which made the forward pass 10x slower than its GEMM bound
        # (406 vs 42 us per frame, bench/README.md "Subnormal refiner weights"); zeroing them
        # changes no output (their products are below 1e-38 x the activations; a re-saved
        # model stores the zeros).
        object.__setattr__(self, "weights", tuple(_flush_subnormal(W) for W in self.weights))
        object.__setattr__(self, "biases", tuple(_flush_subnormal(b) for b in self.biases))

    def predict(self, F: np.ndarray) -> np.ndarray:
        """Band masks in [0, 1], shape (n_frames, n_mels), for features ``F`` (n_frames, d_in)."""
        x = (np.asarray(F, dtype=np.float32) - self.mean) / self.scale
        last = len(self.weights) - 1
        for i, (W, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            x = x @ W + b
            if i < last:
                np.maximum(x, 0, out=x)
        return np.clip(x, 0.0, 1.0, out=x)

    # -- storage (plain arrays and JSON: see nmfsep.model) -----------------------------------

    def to_arrays(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """``(json_metadata, arrays)`` for a model file."""
        meta = {
            "layers": len(self.weights),
            "n_mels": self.n_mels,
            "context": self.context,
            "fmax": self.fmax,
            "norm_seconds": self.norm_seconds,
        }
        arrays = {"refiner_mean": self.mean, "refiner_scale": self.scale}
        for i, (W, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            arrays[f"refiner_W{i}"] = W
            arrays[f"refiner_b{i}"] = b
        return meta, arrays

    @classmethod
    def from_arrays(cls, meta: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> Refiner:
        """The inverse of :meth:`to_arrays` (raises :class:`ModelError` on anything amiss)."""
        try:
            layers = meta["layers"]
            if not isinstance(layers, int) or isinstance(layers, bool) or not 1 <= layers <= 8:
                raise ModelError(f"refiner: bad number of layers {layers!r}")
            n_mels, context = meta["n_mels"], meta["context"]
            fmax, norm = meta["fmax"], meta["norm_seconds"]
            for name, v in (("n_mels", n_mels), ("context", context)):
                if not isinstance(v, int) or isinstance(v, bool):
                    raise ModelError(f"refiner: {name} must be an integer")
            for name, v in (("fmax", fmax), ("norm_seconds", norm)):
                if not isinstance(v, (int, float)) or isinstance(v, bool):
                    raise ModelError(f"refiner: {name} must be a number")

            def get(key: str) -> np.ndarray:
                if key not in arrays:
                    raise ModelError(f"model file lacks the refiner's {key!r}")
                return np.ascontiguousarray(arrays[key], dtype=np.float32)

            return cls(
                weights=tuple(get(f"refiner_W{i}") for i in range(layers)),
                biases=tuple(get(f"refiner_b{i}") for i in range(layers)),
                mean=get("refiner_mean"),
                scale=get("refiner_scale"),
                n_mels=n_mels,
                context=context,
                fmax=float(fmax),
                norm_seconds=float(norm),
            )
        except KeyError as exc:
            raise ModelError(f"refiner metadata lacks {exc.args[0]!r}") from None

    @staticmethod
    def array_names(meta: Mapping[str, Any]) -> list[str]:
        """The array entries a refiner of this metadata occupies (for the loader's checks)."""
        layers = meta.get("layers")
        n = layers if isinstance(layers, int) and not isinstance(layers, bool) else 0
        names = ["refiner_mean", "refiner_scale"]
        for i in range(max(0, min(n, 8))):
            names += [f"refiner_W{i}", f"refiner_b{i}"]
        return names


def refine_masks(
    masks: np.ndarray,
    V: np.ndarray,
    refiner: Refiner,
    *,
    sr: int,
    n_fft: int,
    hop_seconds: float,
    weight: float,
) -> np.ndarray:
    """Blend the first source's mask with the refiner's, in place; the others scaled to keep
    the sum at one.

    Parameters
    ----------
    masks : np.ndarray, shape (n_sources, n_freq, n_frames), float32
    V : np.ndarray, shape (>= n_freq_covered, n_frames)
        The mixture's magnitudes (channels averaged).
    refiner : Refiner
    sr, n_fft : int
        The STFT the masks are on (the refiner's bands are in Hz, so any rate works).
    hop_seconds : float
    weight : float
        ``w`` of ``M_mlp^w M_nmf^(1-w)``; 0 leaves the masks as they are.

    Returns
    -------
    np.ndarray
        ``masks``.
    """
    if weight <= 0 or masks.shape[-1] == 0:
        return masks
    n_bins = min(masks.shape[1], V.shape[0])
    fb, back, covered = mel_filters(int(sr), int(n_fft), n_bins, refiner.n_mels, refiner.fmax)
    P = np.square(V[:n_bins], dtype=np.float32)
    norm_frames = max(1, round(refiner.norm_seconds / hop_seconds))
    first = masks[0, :n_bins]
    F = features(P, first, fb, context=refiner.context, norm_frames=norm_frames)
    M = back @ refiner.predict(F).T  # (n_bins, n_frames)
    w = np.float32(weight)
    blended = np.where(covered[:, None], M**w * first ** (np.float32(1) - w), first)
    blended = np.clip(blended, 0.0, 1.0).astype(masks.dtype, copy=False)
    rest = np.float32(1.0) - first
    scale = np.where(rest > 0, (np.float32(1.0) - blended) / np.where(rest > 0, rest, 1), 0)
    masks[1:, :n_bins] *= scale.astype(masks.dtype, copy=False)
    if masks.shape[0] > 1:
        # where the others had nothing (the first mask was 1) the remainder goes to the last
        gap = np.float32(1.0) - blended - masks[1:, :n_bins].sum(axis=0)
        masks[-1, :n_bins] += np.maximum(gap, 0) * (rest <= 0)
    masks[0, :n_bins] = blended
    return masks


def fit_refiner(
    F: np.ndarray,
    Y: np.ndarray,
    *,
    hidden: Sequence[int] = (512, 512),
    max_iter: int = 40,
    seed: int = 0,
    n_mels: int = N_MELS,
    context: int = CONTEXT,
    fmax: float = 8000.0,
    norm_seconds: float = NORM_SECONDS,
) -> Refiner:
    """Train a refiner on features ``F`` (n_frames, d_in) and band targets ``Y`` (n_frames,
    n_mels) with scikit-learn's ``MLPRegressor`` (Adam, batches of 256, a tenth of the frames
    held out for early stopping); deterministic for a given ``seed``."""
    from sklearn.neural_network import MLPRegressor

    F = np.asarray(F, dtype=np.float32)
    mean = F.mean(axis=0)
    scale = F.std(axis=0)
    scale = np.where(scale > 1e-6, scale, 1.0).astype(np.float32)
    mlp = MLPRegressor(
        hidden_layer_sizes=tuple(int(h) for h in hidden),
        batch_size=256,
        learning_rate_init=1e-3,
        max_iter=int(max_iter),
        early_stopping=True,
        n_iter_no_change=4,
        random_state=int(seed),
    )
    import warnings

    from sklearn.exceptions import ConvergenceWarning

    with warnings.catch_warnings():
        # the epoch budget is the design (early stopping usually ends it first)
        warnings.simplefilter("ignore", ConvergenceWarning)
        mlp.fit((F - mean) / scale, np.asarray(Y, dtype=np.float32))
    return Refiner(
        weights=tuple(np.asarray(W, dtype=np.float32) for W in mlp.coefs_),
        biases=tuple(np.asarray(b, dtype=np.float32) for b in mlp.intercepts_),
        mean=mean.astype(np.float32),
        scale=scale,
        n_mels=n_mels,
        context=context,
        fmax=float(fmax),
        norm_seconds=float(norm_seconds),
    )
