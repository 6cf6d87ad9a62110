"""Variational Bayesian NMF (KL / Poisson) with the number of bases chosen by the bound.

Model (Cemgil, "Bayesian inference for nonnegative matrix factorisation models", Computational
Intelligence and Neuroscience, 2009)::

    V_ft ~ Poisson(sum_k W_fk H_kt),   W_fk ~ Gamma(a_W, rate a_W / b_W),
                                       H_kt ~ Gamma(a_H, rate a_H / b_H)

(prior shapes ``a``, prior means ``b``). The mean-field posterior ``q(W) q(H) q(S)`` over the
factors and the latent per-basis parts ``S_fkt`` (``V_ft = sum_k S_fkt``) has Gamma factors
``q(W_fk) = Gamma(alpha_fk, rate r_fk)`` and multinomial parts. With ``q(S)`` at its optimum
the lower bound on ``log p(V)`` is (Cemgil, section 3; derived again in :func:`_bound`) ::

    B = sum_ft [ V log (L_W L_H) - (E_W E_H) - log Gamma(V + 1) ]
        - KL(q(W) || p(W)) - KL(q(H) || p(H))

with ``E = alpha / r`` (posterior means) and ``L = exp(digamma(alpha)) / r`` (geometric
means). Each iteration is coordinate ascent, so ``B`` never decreases:

1. ``q(W)`` given ``q(S)`` (implied by the current ``L_W``, ``L_H``) and ``q(H)``:
   ``alpha_W = a_W + L_W * ((V / (L_W L_H)) L_H^T)``, ``r_W = a_W / b_W + 1 E_H^T``; then the
   prior mean ``b_W`` by empirical Bayes (its maximiser, ``mean(E_W)``; Cemgil, section 3.3);
2. the same for ``H`` with the ``q(S)`` of the new ``q(W)``.

(Cemgil's Algorithm 1 updates W and H from one ``q(S)``; that is cheaper but not coordinate
ascent, and the bound can then decrease. Alternating costs the same products as the
multiplicative KL updates: two ``L_W L_H`` and two ratio products per iteration.)

Choosing K (:func:`select_vb_nmf`): the bound is an approximation of the model evidence, so the
number of bases is the candidate with the highest bound -- the route of Yang, Hsu & Chien,
"Bayesian singing-voice separation", ISMIR 2014, for unsupervised separation. Chosen over
ARD pruning (Tan & Févotte, "Automatic relevance determination in NMF with the
beta-divergence", IEEE TPAMI 2013) because ARD is a MAP method with no evidence to compare and
its pruning threshold is one more setting; the cost of comparing a few K is the sum of their
sizes (about 4x one K = 32 run for the default set), measured in ``bench/README.md``.

Scale. A Poisson likelihood reads its data as counts, so the evidence depends on the data's
level: multiplied by ``c`` the data term grows like ``c`` while each extra basis costs about
``log c`` (a BIC-like penalty), and larger levels choose more bases. Magnitude spectra have no
natural count, so ``level`` fixes one: the data are scaled to the mean at which the Poisson
variance (= mean) equals the variance of a Rayleigh-distributed magnitude of that mean (noise
STFT bins: variance ``(4 / pi - 1) mean^2``), i.e. mean ``1 / (4 / pi - 1) = 3.66``. Pass
``level=None`` for data that are counts. Results are returned at the data's own scale.

Numerics: float32 arrays (the products run in sgemm; the bound's sums accumulate in float64),
``L_W L_H`` floored at a tiny positive value so silent bins (``V = 0``) give 0, not NaN; memory
is the data plus two arrays of its size.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from nmfsep.errors import ParameterError

__all__ = ["LEVEL", "VBNMFResult", "candidate_components", "fit_vb_nmf", "select_vb_nmf"]

#: Mean the data are scaled to (see the module notes): Poisson variance = Rayleigh variance.
LEVEL = 1.0 / (4.0 / np.pi - 1.0)
#: Candidate counts of bases as multiples of ``n_components`` (32 -> 8, 16, 24, 32, 48).
CANDIDATE_FACTORS = (0.25, 0.5, 0.75, 1.0, 1.5)
_TINY = np.float32(1e-30)
_CHUNK = 4096  # frames per piece of the bound's log term (bounded extra memory)


@dataclass
class VBNMFResult:
    """Result of :func:`fit_vb_nmf`.

    Attributes
    ----------
    W : np.ndarray, shape (n_freq, K), float32
        Posterior mean of the bases, each column scaled to unit L2 norm (the scale moved into
        ``H``; zero columns stay zero).
    H : np.ndarray, shape (K, n_frames), float32
        Posterior mean of the activations, at the scale of the given ``V``.
    bound : float
        Variational lower bound on ``log p(V)`` of the returned posterior, for the data at the
        fitted scale (``V * scale``).
    bounds : np.ndarray, shape (n_checks,), float64
        The bound at each check; the first is the initial point's. Non-decreasing.
    n_iter : int
    converged : bool
        Whether the gain between two checks fell below ``tol`` times the bound's size.
    scale : float
        Factor the data were multiplied by before fitting (``level / mean(V)``, or 1).
    candidates : dict of int to float
        :func:`select_vb_nmf` only: the final bound of each candidate K.
    """

    W: np.ndarray
    H: np.ndarray
    bound: float
    bounds: np.ndarray
    n_iter: int
    converged: bool
    scale: float
    candidates: dict[int, float] = field(default_factory=dict)

    @property
    def n_components(self) -> int:
        return int(self.W.shape[1])


def _check_V(V: Any) -> np.ndarray:
    V = np.asarray(V)
    if V.ndim != 2 or V.shape[0] < 1 or V.shape[1] < 1:
        raise ParameterError(f"V must be a non-empty 2-D array, got shape {V.shape}")
    if not np.issubdtype(V.dtype, np.number) or np.iscomplexobj(V):
        raise ParameterError(f"V must hold real numbers, got dtype {V.dtype}")
    V = np.ascontiguousarray(V, dtype=np.float32)
    if not np.isfinite(V).all():
        raise ParameterError("V holds NaN or infinite values")
    if (V < 0).any():
        raise ParameterError("V must be non-negative")
    return V


def _positive(name: str, value: Any, *, low: float, high: float) -> float:
    ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
    if not ok or not np.isfinite(value) or not low <= float(value) <= high:
        raise ParameterError(f"{name} must be a number in [{low:g}, {high:g}], got {value!r}")
    return float(value)


def _count(name: str, value: Any, *, low: int, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ParameterError(f"{name} must be an integer >= {low}, got {value!r}")
    if high is not None and value > high:
        raise ParameterError(f"{name} must be at most {high}, got {value!r}")
    return int(value)


class _Factor:
    """A Gamma posterior ``q(X) = Gamma(alpha, rate)`` with its prior ``Gamma(a, rate a/b)``."""

    def __init__(self, mean: np.ndarray, shape: float) -> None:
        self.a = shape
        self.alpha = np.full(mean.shape, shape, np.float32)
        self.rate = (np.float32(shape) / mean).astype(np.float32)
        self.b = float(mean.mean(dtype=np.float64))
        self._moments()

    def _moments(self) -> None:
        from scipy.special import digamma

        self.E = self.alpha / self.rate
        # geometric mean exp(E log X): alpha >= a >= 0.1 keeps exp(digamma) far from underflow
        self.L = np.exp(digamma(self.alpha)) / self.rate

    def update(self, S: np.ndarray, other_sum: np.ndarray) -> None:
        """``alpha = a + S``, ``rate = a / b + other_sum`` (broadcast), then ``b``."""
        self.alpha = np.float32(self.a) + S
        self.rate = np.broadcast_to(
            np.float32(self.a / self.b) + other_sum.astype(np.float32), S.shape
        ).astype(np.float32)
        self._moments()
        # empirical Bayes: the prior mean maximising E_q log p(X | a, b) is mean(E[X])
        # (Cemgil 2009, section 3.3); it raises the bound, so the ascent stays monotone
        self.b = max(float(self.E.mean(dtype=np.float64)), 1e-30)

    def kl(self) -> float:
        """``KL(q || p)`` summed over the elements, float64."""
        from scipy.special import digamma, gammaln

        alpha = self.alpha.astype(np.float64)
        rate = self.rate.astype(np.float64)
        a, rp = self.a, self.a / self.b
        kl = (
            (alpha - a) * digamma(alpha)
            - gammaln(alpha)
            + gammaln(a)
            + a * (np.log(rate) - np.log(rp))
            + alpha * (rp - rate) / rate
        )
        return float(kl.sum())


def _bound(V: np.ndarray, W: _Factor, H: _Factor, log_fact: float) -> float:
    """The collapsed lower bound (module notes). With ``q(S)`` optimal, ``E log p(S|W,H) -
    E log q(S)`` reduces per bin to ``V log sum_k L_W L_H - sum_k E_W E_H - log V!``: the
    ``E log S!`` terms cancel and the multinomial's log-probabilities absorb ``E log W + E log
    H``."""
    data = 0.0
    for j in range(0, V.shape[1], _CHUNK):
        D = W.L @ H.L[:, j : j + _CHUNK]
        np.maximum(D, _TINY, out=D)
        np.log(D, out=D)
        data += float(np.einsum("ft,ft->", V[:, j : j + _CHUNK], D, dtype=np.float64))
    model = float(W.E.sum(axis=0, dtype=np.float64) @ H.E.sum(axis=1, dtype=np.float64))
    return data - model - log_fact - W.kl() - H.kl()


def _ratio(V: np.ndarray, W: _Factor, H: _Factor, out: np.ndarray) -> np.ndarray:
    """``V / (L_W L_H)`` into ``out`` (0 where V is 0: silent bins give no NaN)."""
    np.matmul(W.L, H.L, out=out)
    np.maximum(out, _TINY, out=out)
    np.divide(V, out, out=out)
    return out


def fit_vb_nmf(
    V: np.ndarray,
    *,
    n_components: int,
    shape_W: float = 1.0,
    shape_H: float = 1.0,
    level: float | None = LEVEL,
    max_iter: int = 200,
    tol: float = 1e-4,
    check_every: int = 10,
    random_state: int | np.random.Generator | None = None,
    W: np.ndarray | None = None,
    H: np.ndarray | None = None,
) -> VBNMFResult:
    """Variational Bayes for Poisson (KL) NMF with Gamma priors (Cemgil 2009).

    Parameters
    ----------
    V : np.ndarray, shape (n_freq, n_frames), non-negative
        Data (a magnitude spectrogram); computed in float32.
    n_components : int
        K.
    shape_W, shape_H : float
        Prior shapes ``a`` (1: exponential priors; smaller is sparser), in [0.1, 100]. The
        prior means are learned (empirical Bayes).
    level : float or None
        Mean the data are scaled to before fitting (default :data:`LEVEL`, see the module
        notes); None: as given (counts).
    max_iter : int
        Iterations at most (0: the initial point).
    tol : float
        Stop when the bound rose by less than ``tol`` times its size between two checks;
        0: run ``max_iter``.
    check_every : int
        Iterations between two evaluations of the bound (one costs about half an iteration).
    random_state : int, np.random.Generator or None
        Seed of the initialisation (the randomised SVD of NNDSVDa, :func:`nmfsep.nmf.fit_nmf`).
    W, H : np.ndarray, shapes (n_freq, K) and (K, n_frames), optional
        Initial posterior means (together, at the scale of ``V``); default NNDSVDa.

    Returns
    -------
    VBNMFResult

    Raises
    ------
    ParameterError
        For invalid data or parameters.
    """
    from scipy.special import gammaln

    from nmfsep.nmf import fit_nmf

    V = _check_V(V)
    K = _count("n_components", n_components, low=1)
    a_w = _positive("shape_W", shape_W, low=0.1, high=100.0)
    a_h = _positive("shape_H", shape_H, low=0.1, high=100.0)
    max_iter = _count("max_iter", max_iter, low=0)
    every = _count("check_every", check_every, low=1)
    tol = _positive("tol", tol, low=0.0, high=1.0)
    mean = float(V.mean(dtype=np.float64))
    scale = 1.0
    if level is not None:
        level = _positive("level", level, low=1e-6, high=1e6)
        scale = level / mean if mean > 0 else 1.0
    if scale != 1.0:
        V = V * np.float32(scale)
        mean = float(V.mean(dtype=np.float64))
    if (W is None) != (H is None):
        raise ParameterError("give both W and H (initial means), or neither")
    if W is None or H is None:
        # start from the NNDSVDa point of the multiplicative path (deterministic for a seed)
        init = fit_nmf(V, n_components=K, beta=1.0, max_iter=0, random_state=random_state)
        W0, H0 = init.W, init.H
    else:
        W0, H0 = _check_V(W), _check_V(H) * np.float32(scale)
        if W0.shape != (V.shape[0], K) or H0.shape != (K, V.shape[1]):
            raise ParameterError(
                f"W and H must have shapes {(V.shape[0], K)} and {(K, V.shape[1])}, "
                f"got {W0.shape} and {H0.shape}"
            )
    # zeros lifted so that every posterior starts with a positive mean
    floor = np.float32(max(np.sqrt(mean / K), 1e-12) * 1e-3)
    qW = _Factor(np.maximum(W0, floor), a_w)
    qH = _Factor(np.maximum(H0, floor), a_h)
    log_fact = sum(
        float(gammaln(V[:, j : j + _CHUNK] + np.float32(1)).sum(dtype=np.float64))
        for j in range(0, V.shape[1], _CHUNK)
    )
    buf = np.empty_like(V)
    bounds = [_bound(V, qW, qH, log_fact)]
    converged = False
    n_iter = 0
    for n_iter in range(1, max_iter + 1):
        R = _ratio(V, qW, qH, buf)
        qW.update(qW.L * (R @ qH.L.T), qH.E.sum(axis=1)[None, :])
        R = _ratio(V, qW, qH, buf)
        qH.update(qH.L * (qW.L.T @ R), qW.E.sum(axis=0)[:, None])
        if n_iter % every == 0 or n_iter == max_iter:
            bounds.append(_bound(V, qW, qH, log_fact))
            # relative to the current bound, not the initial one as fit_nmf does: the first
            # posteriors are as wide as the priors, so the initial bound is far below any
            # fitted one and would stop the ascent early
            if tol > 0 and bounds[-1] - bounds[-2] < tol * abs(bounds[-1]):
                converged = True
                break
    Wm, Hm = qW.E.astype(np.float32), qH.E.astype(np.float32)
    norm = np.linalg.norm(Wm, axis=0)
    norm = np.where(norm > 0, norm, 1.0).astype(np.float32)
    return VBNMFResult(
        W=np.ascontiguousarray(Wm / norm),
        H=np.ascontiguousarray(Hm * (norm / np.float32(scale))[:, None]),
        bound=bounds[-1],
        bounds=np.asarray(bounds, np.float64),
        n_iter=n_iter,
        converged=converged,
        scale=scale,
    )


def candidate_components(n_components: int, *, minimum: int = 1) -> tuple[int, ...]:
    """The K compared by :func:`select_vb_nmf` for a nominal ``n_components``: that times
    :data:`CANDIDATE_FACTORS` (32 -> 8, 16, 24, 32, 48), rounded, each at least ``minimum``."""
    n = _count("n_components", n_components, low=1)
    return tuple(sorted({max(int(minimum), round(n * f), 1) for f in CANDIDATE_FACTORS}))


def select_vb_nmf(
    V: np.ndarray, *, candidates: Sequence[int] = (8, 16, 24, 32, 48), **kwargs: Any
) -> VBNMFResult:
    """:func:`fit_vb_nmf` for each K of ``candidates``; the result with the highest bound (the
    smallest K wins a tie), its ``candidates`` holding every K's bound.

    Parameters
    ----------
    V : np.ndarray, shape (n_freq, n_frames)
    candidates : sequence of int
        Numbers of bases to compare (distinct, >= 1).
    **kwargs
        Passed to :func:`fit_vb_nmf` (not ``n_components``).
    """
    ks = sorted({_count("candidate", k, low=1) for k in candidates})
    if not ks:
        raise ParameterError("candidates must name at least one number of bases")
    if "n_components" in kwargs:
        raise ParameterError("select_vb_nmf takes candidates, not n_components")
    from nmfsep.nmf import fit_nmf

    if "W" in kwargs or "H" in kwargs:
        raise ParameterError("select_vb_nmf makes its own initial W and H")
    V = _check_V(V)
    # one NNDSVDa point for the largest K; a smaller K starts from its first columns (the
    # leading singular pairs), so the SVD is computed once
    init = fit_nmf(V, n_components=ks[-1], beta=1.0, max_iter=0,
                   random_state=kwargs.get("random_state"))  # fmt: skip
    best: VBNMFResult | None = None
    bounds: dict[int, float] = {}
    for k in ks:
        W0, H0 = init.W[:, :k], init.H[:k]
        result = fit_vb_nmf(V, n_components=k, W=W0, H=H0, **kwargs)
        bounds[k] = result.bound
        if best is None or result.bound > best.bound:
            best = result
    assert best is not None
    best.candidates = bounds
    return best
