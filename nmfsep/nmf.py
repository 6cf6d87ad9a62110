"""Non-negative matrix factorisation with the beta-divergence (multiplicative updates).

Orientation is audio's: ``V (n_freq, n_frames) ~= W (n_freq, K) @ H (K, n_frames)``.

One public solver, :func:`fit_nmf`, and the loss, :func:`beta_divergence`. Below them, in the
style of scikit-learn's ``_nmf.py``: the beta name is turned into a number once, every parameter
is checked in one place (:func:`_check_inputs`), and the updates run on private fused kernels
(:mod:`nmfsep._kernels`).

Algorithm
---------
Majorisation–minimisation (MM) multiplicative updates of Févotte & Idier (2011), exponent
``gamma(beta) = 1/(2-beta)`` (beta < 1), ``1`` (1 <= beta <= 2), ``1/(beta-1)`` (beta > 2).
Each iteration updates H, then the learned columns of W (the order scikit-learn uses, so that
from the same initial point both produce the same iterates).

The objective is ::

    D_beta(V | WH) + l1_H*sum(H) + l2_H/2*||H||^2 + l1_W*sum(W) + l2_W/2*||W||^2

and it never increases (up to float rounding), for every beta, with or without penalties and
with column normalisation (the temporal-continuity penalty, below, has one step that is measured,
not proved). Why (a proof sketch, so that nobody "simplifies" it away):

* H step. With ``p = W^T (WH)^(beta-1)``, ``q = W^T (V (WH)^(beta-2))`` the MM auxiliary
  function has, in ``r = h/h_old``, the derivative ``p r^(beta-1) - q r^(beta-2)`` for
  1 <= beta <= 2 (both parts majorised by Jensen), ``p - q r^(beta-2)`` for beta < 1 (concave
  part by its tangent) and ``p r^(beta-1) - q`` for beta > 2. An L1 penalty adds ``l1``, an
  L2 penalty adds ``mu r`` with ``mu = l2 * h_old``.
  - L1 only: ``r = (q / (p + l1))^gamma`` is the exact minimiser (beta < 1) or lies between the
    current point ``r = 1`` and the minimiser (otherwise: it is a mediant), so the convex
    auxiliary function does not increase.
  - With an L2 term the classic ``den + l2*H`` rule can overshoot for beta < 2 (e.g. KL).
    We majorise further: for beta < 2 the ``p`` term (and the linear terms for beta < 1) by
    quadratics in ``r`` (``r^b/b <= r^2/2 + 1/b - 1/2`` for b <= 2, ``r <= (r^2+1)/2``), which
    gives ``r = (q / (p + l1 + mu))^(1/(3-beta))``, again between 1 and the minimiser. For
    beta = 1 we use the exact minimiser instead: the positive root of
    ``mu r^2 + (p + l1) r - q = 0``. For beta >= 2, ``mu r <= mu r^(beta-1)``-type bounds give the
    classic rule with exponent ``gamma(beta)``.
* W step with normalisation (``w_norm``). Rescaling a learned column ``w_k / s``, ``s h_k``
  leaves ``WH`` unchanged but changes the H penalty, so "normalise after the W update" alone
  can increase the objective. We therefore minimise the scale-invariant extension
  ``D(V|WH) + sum_k pen_H(n_k h_k)`` with ``n_k = ||w_k||`` (Le Roux, Weninger & Hershey, "Sparse
  NMF – half-baked or well done?", 2015, use the same invariance): it equals the objective when
  the columns are normalised and it is unchanged by the renormalisation. Its W step is an MM
  step from a normalised W: for ``w_norm="l1"``, ``l1_H a_k n_k`` (``a_k = sum_n h_kn``) is linear
  in W (adds ``l1_H a_k`` to the denominator) and ``l2_H b_k n_k^2 / 2`` (``b_k = ||h_k||^2``) is
  majorised by Cauchy–Schwarz (adds ``l2_H b_k`` as an L2-type term); for ``w_norm="l2"``,
  ``n_k <= (||w_k||^2 + 1)/2`` at a unit-norm point, so both become L2-type terms
  (``(l1_H a_k + l2_H b_k) * W``). Penalties on W together with normalisation would be
  constant or not scale-invariant, so ``l1_W``/``l2_W`` require ``w_norm=None`` when W has
  learned columns.

Temporal continuity
-------------------
``continuity=lam`` adds Virtanen's penalty (T. Virtanen, "Monaural sound source separation by
nonnegative matrix factorization with temporal continuity and sparseness criteria", IEEE TASLP
15(3), 2007, eq. 5) on the chosen rows of H::

    lam_eff * sum_k T * sum_t (h_kt - h_k,t-1)^2 / sum_t h_kt^2

(``1/sigma_k^2 = T / sum_t h_kt^2``; in the code ``sum_t h_kt^2 + T tau_k^2``, with ``tau_k``
float32 epsilon times the activation at which basis k alone explains a frame of the data's mean
level: a row that dies out then stops paying the penalty before its values reach the float32
underflow, where the ratio would jump; measured: without it, a vanishing row raised the float32
objective by 0.4 %). Up to that floor it does not change when a row is rescaled, so the W
step and its normalisation are left as they are. ``lam_eff = lam * F * mean(V)**beta / K``: the
divergence scales as ``level**beta`` and grows with ``F`` and ``T`` like the penalty grows with
``K`` and ``T``, so ``lam`` means the same at any level, length, number of bins and of
components (``lam = 1``: a mean relative roughness of 1 per frame costs as much as the data's
whole beta-scale, ``F * mean(V)**beta`` per frame; ``_rescale_extreme`` is exact with it too).

Update (``_kernels.mu_continuity``). With ``S, D, rho = D/S`` of the current row, Virtanen's
gradient splits into ``4 T h_t / S`` (positive: 2 per neighbour) and ``2 T (h_t-1 + h_t+1) / S +
2 T rho h_t / S`` (negative), and we use exactly these parts, as MM terms: the penalty is
replaced by ``rho + (D(h) - rho S(h)) / S_old`` (equal at the current point, with the same
gradient), ``-rho S(h)`` (concave) by its tangent (adds ``2 c rho h_old`` to the numerator,
``c = lam_eff T / S_old``), and the neighbour products are made exact by updating the even frames
first and then the odd ones with their (new) even neighbours held: with the neighbours fixed the
penalty of a frame is ``c (n h^2 - 2 s h)``, an L2-type term ``mu = 2 c n h_old`` plus the linear
``-2 c s h``, which for every beta <= 2 is majorised by the numerator's own form (``-r <= -1 -
(r^a - 1)/a``, ``a = beta - 1``, since ``(r^a - 1)/a`` is concave for ``a <= 1``; for beta > 2 the
numerator term is already linear). The divergence's auxiliary function is separable per
element, so the two half-sweeps (no extra matrix products) decrease its sum with the penalty's.
The one step that is not a bound is ``D/S <= rho + (D - rho S) / S_old``; it holds whenever the
row's energy and relative roughness move the same way and the error is second order in the
step; the objective was measured not to increase on 600 random problems (beta 0 to 3, lam
1e-3 to 300, float32 and float64, with and without L1/L2, fixed and learned bases) and is tested
not to for beta in {0, 0.5, 1, 2}.
Continuity couples the frames, so the H-only solver runs it on all frames at once (no frame
blocks, which would each be iterated to their own convergence).

Speed
-----
float32 data stay float32 (sgemm); ``V``, ``H`` and ``W^T`` are kept C-contiguous with the
component axis first, so every product is one BLAS call without copies. ``WH`` is computed
once per half-update into a reused buffer and turned in place into the ratio terms by one fused
kernel; KL uses column sums instead of ``W^T 1``; with W fixed, ``W^T V`` and ``W^T W``
(Euclidean) or the column sums (KL) are computed once. With W entirely fixed the frames are
independent: they are solved in cache-sized blocks, each iterated to its own convergence.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from nmfsep.errors import ParameterError
from nmfsep.limits import MAX_ARRAY_BYTES, check_memory
from nmfsep.validation import parse_beta

__all__ = ["NMFResult", "beta_divergence", "fit_nmf"]

#: Default epsilon floor (scikit-learn's: float32 machine epsilon).
EPSILON = float(np.finfo(np.float32).eps)

_INITS = ("random", "nndsvd", "nndsvda", "custom")
_W_NORMS = ("l2", "l1")
#: Bytes of per-iteration working data a frame block of the H-only problem may use (L2-sized).
_H_BLOCK_BYTES = 1536 * 1024


@dataclass
class NMFResult:
    """Result of :func:`fit_nmf`.

    Attributes
    ----------
    W : np.ndarray, shape (n_freq, K)
        Bases (learned columns normalised if ``w_norm`` is set and H is learned; fixed columns
        as given).
    H : np.ndarray, shape (K, n_frames)
        Activations.
    n_iter : int
        Number of iterations run.
    losses : np.ndarray, shape (n_checks,), float64
        Objective (beta-divergence + penalties) at each convergence check; the first entry is the
        initial objective and the last the objective of the returned ``W``, ``H``.
    converged : bool
        Whether the decrease between two checks fell below ``tol`` times the initial objective
        before ``max_iter``.
    """

    W: np.ndarray
    H: np.ndarray
    n_iter: int
    losses: np.ndarray
    converged: bool


# --------------------------------------------------------------------------------------------
# public functions
# --------------------------------------------------------------------------------------------


def beta_divergence(
    V: np.ndarray, V_hat: np.ndarray, beta: float | str, *, eps: float | None = None
) -> float:
    """Summed beta-divergence ``D_beta(V | V_hat)``.

    Same definition as scikit-learn's ``_beta_divergence`` (so that losses compare), made total:
    ``V_hat`` is floored at ``eps`` wherever it is divided by or raised to a negative power; for
    beta <= 0, where ``D(0 | y)`` is infinite, ``V`` is floored at ``eps`` too. Entries with
    ``V <= eps`` contribute ``V_hat`` (beta = 1) or ``V_hat**beta / beta`` (beta > 0, beta != 1, 2),
    i.e. they count as exact zeros.

    Parameters
    ----------
    V, V_hat : np.ndarray, same shape, non-negative
    beta : float or str
        2 or "euclidean"/"frobenius" (half the squared Euclidean distance), 1 or
        "kullback-leibler"/"kl" (generalised KL), 0 or "itakura-saito"/"is", or any real number.
    eps : float, optional
        Floor, default float32 machine epsilon (scikit-learn's).

    Returns
    -------
    float
        The divergence (finite, >= 0 up to rounding), accumulated in float64.
    """
    from nmfsep import _kernels

    b = parse_beta(beta)
    eps_ = _check_eps(eps)
    V = _as_data("V", V, None, ndim=None)
    V_hat = _as_data("V_hat", V_hat, None, ndim=None)
    if V.shape != V_hat.shape:
        raise ParameterError(
            f"V and V_hat must have the same shape, got {V.shape} and {V_hat.shape}"
        )
    dtype = np.float64 if np.float64 in (V.dtype, V_hat.dtype) else np.float32
    v = np.ascontiguousarray(V, dtype=dtype).reshape(-1)
    vh = np.ascontiguousarray(V_hat, dtype=dtype).reshape(-1)
    return float(_kernels.div_sum(v, vh, b, eps_))


def fit_nmf(
    V: np.ndarray,
    *,
    n_components: int | None = None,
    W: np.ndarray | None = None,
    H: np.ndarray | None = None,
    beta: float | str = 1.0,
    fixed_W: bool | np.ndarray | Iterable[int] = False,
    update_H: bool = True,
    l1_H: float = 0.0,
    l2_H: float = 0.0,
    l1_W: float = 0.0,
    l2_W: float = 0.0,
    continuity: float = 0.0,
    continuity_rows: np.ndarray | Iterable[int] | None = None,
    w_norm: str | None = "l2",
    init: str | None = None,
    max_iter: int = 200,
    tol: float = 1e-4,
    check_every: int = 10,
    random_state: int | np.random.Generator | None = None,
    callback: Callable[[int, float], Any] | None = None,
    compute_loss: bool = True,
) -> NMFResult:
    """Factorise ``V ~= W @ H`` by beta-divergence multiplicative updates.

    Parameters
    ----------
    V : np.ndarray, shape (n_freq, n_frames)
        Non-negative data (e.g. a magnitude spectrogram). float64 stays float64; anything else
        is computed in float32.
    n_components : int, optional
        K. Needed unless ``W`` or ``H`` is given (then it must agree with them).
    W : np.ndarray, shape (n_freq, K), optional
        Initial (or fixed) bases; not all zeros (the updates cannot leave zero).
    H : np.ndarray, shape (K, n_frames), optional
        Initial (or fixed, ``update_H=False``) activations; not all zeros.
    beta : float or str
        Divergence: 2 / "euclidean" / "frobenius", 1 / "kullback-leibler" / "kl",
        0 / "itakura-saito" / "is", or any real number.
    fixed_W : bool, boolean mask of shape (K,), or iterable of column indices
        Columns of ``W`` kept exactly as given (``True``: all, supervised separation; a subset:
        semi-supervised separation with extra learned bases). Needs ``W``.
    update_H : bool
        Learn ``H`` (default). ``False`` keeps the given ``H`` exactly (needs ``H``); ``w_norm``
        is then not applied (the scale of a column could not move into the kept ``H``).
    l1_H, l2_H, l1_W, l2_W : float
        Penalties ``l1*sum(X) + l2/2*||X||^2`` added to the objective.
    continuity : float
        Temporal-continuity penalty on the activations (Virtanen 2007; module docstring,
        "Temporal continuity"): ``continuity * F * mean(V)**beta / K * sum_k T * sum_t
        (h_kt - h_k,t-1)^2 / sum_t h_kt^2``, so the weight means the same at any level and
        size. 0: none. The frames of ``V`` are taken as consecutive in time; when a long signal
        is solved in blocks, continuity holds inside each block only.
    continuity_rows : boolean mask of shape (K,) or iterable of row indices, optional
        Rows of H the continuity penalty applies to; None: every row.
    w_norm : {"l2", "l1", None}
        Learned columns of ``W`` are rescaled to unit norm (scale moved into ``H``) at the start
        and after each W update, so that penalties on ``H`` mean sparsity, not scale. Fixed
        columns are never touched; with ``update_H=False`` nothing is rescaled.
    init : {None, "nndsvda", "nndsvd", "random", "custom"}
        None: "nndsvda" when neither ``W`` nor ``H`` is given, else "custom". With "custom" a
        missing ``H`` (``W`` given) starts from the projection of each frame on the bases,
        rescaled to the frame's energy (the cheap rule that reached a given loss fastest
        in ``bench/nmf_speed.py``); a missing ``W`` from the symmetric rule. "random" draws the
        missing factors (scikit-learn scaling ``sqrt(mean(V)/K)``).
    max_iter : int
        Maximum number of iterations (0: only evaluate the initial point).
    tol : float
        Stop when the objective decreased by less than ``tol`` times the *initial* objective
        between two checks (scikit-learn's rule: ``(previous - current) / initial < tol``), so an
        exact factorisation converges too. 0 runs exactly ``max_iter`` iterations. The
        objective of the checks is accumulated in float64 (for float32 Euclidean data from
        the residual or from float64 products, never by a cancelling float32 sum).
    check_every : int
        Iterations between convergence checks (a check costs about half an iteration). When
        ``tol == 0`` and no ``callback`` is given only the initial and final objectives are
        computed.
    random_state : int, np.random.Generator or None
        Seed for "random" init and the randomised SVD of "nndsvd(a)".
    callback : callable(n_iter, loss), optional
        Called at each check. When all of ``W`` is fixed and ``H`` learned, frames are solved in
        independent blocks and the callback receives the total objective per check after all
        blocks have run.
    compute_loss : bool
        False: the objective is never evaluated (not even the initial and final ones): exactly
        ``max_iter`` iterations, ``tol`` unused, ``losses`` empty and ``converged`` False. For
        short runs whose stopping rule could not fire anyway (``max_iter <= check_every``):
        the two evaluations cost about a whole iteration and their constants another half
        (measured: 14 % of the built-in separation). Not with ``callback``.

    Returns
    -------
    NMFResult
        ``W``, ``H`` (new arrays, dtype of the computation), ``n_iter``, ``losses``, ``converged``.

    Raises
    ------
    ParameterError
        For invalid data or parameters (negative or non-finite values, wrong shapes, ...).

    Notes
    -----
    The objective never increases (module docstring) as long as the model ``WH`` stays above
    the epsilon floor (float32 machine epsilon, as in scikit-learn) where it is divided by or
    raised to a negative power; with data of a tiny scale (values around 1e-6 and below) the
    floor can bind, so rescale such data first. For beta <= 0, ``V`` is floored at epsilon too.

    Separation (supervised): ``fit_nmf(V_mix, W=W_bases, fixed_W=True, beta=...)``; H starts from
    the projection rule. Semi-supervised: ``W=np.hstack([W_known, W_free])`` with
    ``fixed_W=range(K_known)``.
    """
    p = _check_inputs(
        V,
        n_components=n_components,
        W=W,
        H=H,
        beta=beta,
        fixed_W=fixed_W,
        update_H=update_H,
        l1_H=l1_H,
        l2_H=l2_H,
        l1_W=l1_W,
        l2_W=l2_W,
        continuity=continuity,
        continuity_rows=continuity_rows,
        w_norm=w_norm,
        init=init,
        max_iter=max_iter,
        tol=tol,
        check_every=check_every,
        random_state=random_state,
        callback=callback,
        compute_loss=compute_loss,
    )
    scale = _rescale_extreme(p)
    Wt, Hc = _initialize(p)
    learn = p["learn"]
    if p["w_norm"] is not None and (learn is None or learn.size):
        _normalise(Wt, Hc, learn, p["w_norm"])
    p["cont_lam"] = _continuity_weights(p, Wt)
    run = _Run(p)
    if learn is not None and learn.size == 0 and p["update_H"]:
        n_iter, losses, converged = _solve_h_only(p, Wt, Hc, run)
    else:
        prob = _Problem(p, p["V"], Wt, Hc)
        n_iter, losses, converged = _iterate(prob, run, live=True)
    if scale != 1.0:
        Hc /= Hc.dtype.type(scale)
        losses = [loss / scale ** p["beta"] for loss in losses]
    for X in (Wt, Hc):
        if not np.isfinite(X).all():  # pragma: no cover - defensive, the kernels cap values
            np.nan_to_num(X, copy=False, nan=0.0, posinf=float(np.finfo(X.dtype).max) ** 0.5)
    return NMFResult(
        W=np.ascontiguousarray(Wt.T),
        H=Hc,
        n_iter=n_iter,
        losses=np.asarray(losses, dtype=np.float64),
        converged=converged,
    )


#: Data whose peak exceeds 2**_LEVEL_BITS are solved at unit peak (tiny data need nothing: the
#: epsilon floor already keeps every term finite).
_LEVEL_BITS = 32


def _rescale_extreme(p: dict[str, Any]) -> float:
    """Solve data of extreme level (float32 products of V ~ 1e20 overflow) at unit peak.

    With ``V' = s V`` (``s`` a power of two, so exact), ``H' = s H`` and W unchanged,
    ``D_beta(V'|W H') = s**beta D_beta(V|W H)``; penalties scaled by ``s**(beta-1)`` (L1 on H),
    ``s**(beta-2)`` (L2 on H) and ``s**beta`` (on W) make the scaled objective ``s**beta`` times
    the original one, so both have the same minimisers and iterates. Returns ``s`` (1.0: as is)
    and rewrites ``p`` in place; the caller divides H by ``s`` and the losses by ``s**beta``.
    """
    peak = float(np.max(p["V"], initial=0.0))
    if peak <= 2.0**_LEVEL_BITS:
        return 1.0
    bits = round(np.log2(peak))
    beta = p["beta"]
    if bits * max(abs(beta), abs(beta - 2)) > 1000:
        # the factors s**beta ... leave float64 (2**1024): so does the loss of such a problem
        raise ParameterError(
            f"beta {beta:g} on data peaking at {peak:.3g}: the divergence is of order "
            f"2**{bits * abs(beta):.0f}, beyond floating point; scale the data down or use a "
            "smaller |beta|"
        )
    scale = 2.0**-bits
    dt = p["V"].dtype.type
    p["V"] = p["V"] * dt(scale)
    if p["H"] is not None:
        p["H"] = p["H"] * dt(scale)
    p["l1_H"] *= scale ** (beta - 1)
    p["l2_H"] *= scale ** (beta - 2)
    p["l1_W"] *= scale**beta
    p["l2_W"] *= scale**beta
    if p["callback"] is not None:
        user, factor = p["callback"], scale**beta
        p["callback"] = lambda n_iter, loss: user(n_iter, loss / factor)
    return scale


def _continuity_weights(p: dict[str, Any], Wt: np.ndarray) -> np.ndarray | None:
    """Continuity weights, shape (2, K) float64: ``lam_eff`` per row (0: not penalised) and the
    floor ``T tau_k^2`` added to ``S_k`` (module docstring); None when there is no penalty.

    Taken from the (possibly rescaled) data and the initial bases, so that ``_rescale_extreme``
    scales ``lam_eff`` by ``s**beta`` like the divergence and the floor like ``S_k``. Silent data
    (mean 0) get none: there is nothing to smooth, and ``0**beta`` would be infinite for
    beta < 0.
    """
    lam, rows = p["continuity"], p["continuity_rows"]
    if lam == 0 or not rows.any() or p["N"] < 2:
        return None
    mean = float(p["V"].mean(dtype=np.float64))
    if not mean > 0:
        return None
    out = np.zeros((2, p["K"]))
    out[0] = np.where(rows, lam * p["F"] * mean ** p["beta"] / p["K"], 0.0)
    # tau_k: EPSILON times the activation that makes basis k alone explain a frame of mean level
    colsum = np.maximum(Wt.sum(axis=1, dtype=np.float64), np.finfo(np.float64).tiny)
    out[1] = p["N"] * (p["eps"] * p["F"] * mean / colsum) ** 2
    return out


# --------------------------------------------------------------------------------------------
# parameter checks
# --------------------------------------------------------------------------------------------


def _check_eps(eps: Any) -> float:
    if eps is None:
        return EPSILON
    if isinstance(eps, bool) or not isinstance(eps, numbers.Real) or not 0 < float(eps) < 1:
        raise ParameterError(f"eps must be a number in (0, 1), got {eps!r}")
    return float(eps)


def _as_data(name: str, X: Any, dtype: Any, *, ndim: int | None = 2) -> np.ndarray:
    """Array check: numeric, finite, non-negative, right ndim, non-empty."""
    try:
        A = np.asarray(X)
    except Exception as exc:  # e.g. ragged lists
        raise ParameterError(f"{name} must be an array of numbers ({exc})") from None
    if A.dtype == object or not (
        np.issubdtype(A.dtype, np.floating)
        or np.issubdtype(A.dtype, np.integer)
        or A.dtype == np.bool_
    ):
        raise ParameterError(f"{name} must be a real numeric array, got dtype {A.dtype}")
    if ndim is not None and A.ndim != ndim:
        raise ParameterError(f"{name} must be {ndim}-D, got shape {A.shape}")
    if A.size == 0:
        raise ParameterError(f"{name} must not be empty, got shape {A.shape}")
    if dtype is None:
        dtype = np.float64 if A.dtype == np.float64 else np.float32
    if A.dtype != dtype:
        with np.errstate(over="ignore"):
            A = A.astype(dtype)
    if not np.isfinite(A).all():
        raise ParameterError(f"{name} contains NaN or infinite values")
    if (A < 0).any():
        raise ParameterError(f"{name} must be non-negative (min {float(A.min()):g})")
    return A


def _check_number(name: str, value: Any, *, low: float = 0.0, integer: bool = False) -> Any:
    if integer:
        ok = isinstance(value, numbers.Integral)
    else:
        ok = isinstance(value, numbers.Real)
    if isinstance(value, bool) or not ok:
        kind = "an integer" if integer else "a number"
        raise ParameterError(f"{name} must be {kind}, got {value!r}")
    x = float(value)
    if not np.isfinite(x) or x < low:
        raise ParameterError(f"{name} must be >= {low:g}, got {value!r}")
    return int(value) if integer else x


def _fixed_mask(fixed_W: Any, K: int, name: str = "fixed_W", what: str = "column") -> np.ndarray:
    """Boolean mask (K,) of fixed columns from True/False, a mask or column indices (also the
    rows of ``continuity_rows``: ``name``/``what`` name them in messages)."""
    if isinstance(fixed_W, bool | np.bool_):
        return np.full(K, bool(fixed_W))
    if isinstance(fixed_W, str) or not isinstance(fixed_W, Iterable | np.ndarray):
        raise ParameterError(
            f"{name} must be True, False, a boolean mask or {what} indices, got {fixed_W!r}"
        )
    arr = np.asarray(list(fixed_W) if not isinstance(fixed_W, np.ndarray) else fixed_W)
    if arr.dtype == np.bool_:
        if arr.shape != (K,):
            raise ParameterError(f"{name} mask must have shape ({K},), got {arr.shape}")
        return arr.copy()
    if arr.size == 0:
        return np.zeros(K, dtype=bool)
    if arr.ndim != 1 or not np.issubdtype(arr.dtype, np.integer):
        raise ParameterError(f"{name} indices must be a 1-D sequence of integer {what} indices")
    if arr.min() < 0 or arr.max() >= K:
        raise ParameterError(f"{name} {what} indices must be in [0, {K - 1}], got {arr.tolist()}")
    mask = np.zeros(K, dtype=bool)
    mask[arr] = True
    return mask


def _check_inputs(V: Any, **kw: Any) -> dict[str, Any]:
    """Every check of :func:`fit_nmf` in one place; returns the normalised parameters."""
    Va = _as_data("V", V, None)
    dtype = Va.dtype
    Va = np.ascontiguousarray(Va)
    F, N = Va.shape
    beta = parse_beta(kw["beta"])
    W = None if kw["W"] is None else _as_data("W", kw["W"], dtype)
    H = None if kw["H"] is None else _as_data("H", kw["H"], dtype)
    for name, X in (("W", W), ("H", H)):
        if X is not None and not X.any():
            raise ParameterError(
                f"{name} is all zeros: multiplicative updates cannot move from zero and the "
                f"model would be zero (pass positive values, or leave {name} out to initialise it)"
            )
    Ks = []
    if kw["n_components"] is not None:
        Ks.append(
            ("n_components", _check_number("n_components", kw["n_components"], low=1, integer=True))
        )
    if W is not None:
        if W.shape[0] != F:
            raise ParameterError(
                f"W must have {F} rows (V has shape {Va.shape}), got shape {W.shape}"
            )
        Ks.append(("W", W.shape[1]))
    if H is not None:
        if H.shape[1] != N:
            raise ParameterError(
                f"H must have {N} columns (V has shape {Va.shape}), got shape {H.shape}"
            )
        Ks.append(("H", H.shape[0]))
    if not Ks:
        raise ParameterError("n_components is required when neither W nor H is given")
    K = Ks[0][1]
    for name, k in Ks[1:]:
        if k != K:
            raise ParameterError(
                f"inconsistent number of components: {Ks[0][0]} gives {K}, {name} gives {k}"
            )
    # W, H and their update buffers: refuse a size the data cannot justify before numpy tries
    # (n_components=1e9 was a MemoryError); large data may have factors as large as itself
    check_memory(
        "W and H",
        rows=K,
        cols=F + N,
        itemsize=dtype.itemsize,
        copies=2,
        maximum=max(MAX_ARRAY_BYTES, 4 * Va.nbytes),
    )
    init = kw["init"]
    if init is not None and init not in _INITS:
        raise ParameterError(f"unknown init {init!r} (use one of {', '.join(_INITS)})")
    if init is None:
        init = "custom" if (W is not None or H is not None) else "nndsvda"
    if init == "custom" and W is None and H is None:
        raise ParameterError("init='custom' needs W and/or H")
    if init in ("nndsvd", "nndsvda") and (W is not None or H is not None):
        raise ParameterError(
            f"init={init!r} computes both W and H; do not pass W/H (or use init='custom')"
        )
    mask = _fixed_mask(kw["fixed_W"], K)
    if mask.any() and W is None:
        raise ParameterError("fixed_W needs the fixed bases: pass W")
    update_H = kw["update_H"]
    if not isinstance(update_H, bool | np.bool_):
        raise ParameterError(f"update_H must be True or False, got {update_H!r}")
    if not update_H and H is None:
        raise ParameterError("update_H=False needs the activations: pass H")
    pens = {n: _check_number(n, kw[n]) for n in ("l1_H", "l2_H", "l1_W", "l2_W")}
    continuity = _check_number("continuity", kw["continuity"])
    rows = kw["continuity_rows"]
    cont_rows = np.ones(K, bool) if rows is None else _fixed_mask(rows, K, "continuity_rows", "row")
    w_norm = kw["w_norm"]
    if w_norm is not None and w_norm not in _W_NORMS:
        raise ParameterError(f"w_norm must be 'l2', 'l1' or None, got {w_norm!r}")
    if not update_H:
        # H is kept as given, so the scale of a rescaled column could not move into H: the
        # columns are left unnormalised (with H fixed the H penalties are constant anyway).
        w_norm = None
    if w_norm is not None and not mask.all() and (pens["l1_W"] > 0 or pens["l2_W"] > 0):
        raise ParameterError(
            "l1_W/l2_W penalties need w_norm=None: on normalised columns they are constant "
            "or not scale-invariant"
        )
    max_iter = _check_number("max_iter", kw["max_iter"], integer=True)
    tol = _check_number("tol", kw["tol"])
    check_every = _check_number("check_every", kw["check_every"], low=1, integer=True)
    rs = kw["random_state"]
    if not (rs is None or isinstance(rs, np.random.Generator)):
        if isinstance(rs, bool) or not isinstance(rs, numbers.Integral) or rs < 0:
            raise ParameterError(
                f"random_state must be None, a non-negative int or a Generator, got {rs!r}"
            )
    callback = kw["callback"]
    if callback is not None and not callable(callback):
        raise ParameterError("callback must be callable(n_iter, loss)")
    compute_loss = kw["compute_loss"]
    if not isinstance(compute_loss, bool | np.bool_):
        raise ParameterError(f"compute_loss must be True or False, got {compute_loss!r}")
    if callback is not None and not compute_loss:
        raise ParameterError("a callback receives the objective: it needs compute_loss=True")
    learn = None if not mask.any() else np.flatnonzero(~mask)
    return dict(
        V=Va,
        F=F,
        N=N,
        K=K,
        dtype=dtype,
        beta=beta,
        W=W,
        H=H,
        learn=learn,
        update_H=bool(update_H),
        w_norm=w_norm,
        init=init,
        max_iter=max_iter,
        tol=tol,
        check_every=check_every,
        random_state=rs,
        callback=callback,
        compute_loss=bool(compute_loss),
        eps=EPSILON,
        continuity=continuity,
        continuity_rows=cont_rows,
        **pens,
    )


# --------------------------------------------------------------------------------------------
# initialisation
# --------------------------------------------------------------------------------------------


def _initialize(p: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """Initial ``W^T`` (K, F) and ``H`` (K, N), C-contiguous, in the working dtype."""
    V, K, dtype = p["V"], p["K"], p["dtype"]
    W, H = p["W"], p["H"]
    init = p["init"]
    rng = np.random.default_rng(p["random_state"])
    if init in ("nndsvd", "nndsvda"):
        Wn, Hn = _nndsvd(V, K, rng, fill=init == "nndsvda")
        return np.ascontiguousarray(Wn.T, dtype=dtype), np.ascontiguousarray(Hn, dtype=dtype)
    if init == "random":
        avg = np.sqrt(float(V.mean(dtype=np.float64)) / K)
        if W is None:
            W = (avg * np.abs(rng.standard_normal((V.shape[0], K)))).astype(dtype)
        if H is None:
            H = (avg * np.abs(rng.standard_normal((K, V.shape[1])))).astype(dtype)
    elif W is None:  # custom, H given
        W = _h_from_w(V.T, np.asarray(H).T).T
    elif H is None:  # custom, W given
        H = _h_from_w(V, W)
    return np.array(np.asarray(W).T, dtype=dtype, order="C"), np.array(H, dtype=dtype, order="C")


def _h_from_w(V: np.ndarray, W: np.ndarray) -> np.ndarray:
    """Cheap H for given W: each frame projected on the bases, rescaled to the frame's sum.

    ``H = (W^T V) * s_n`` with ``s_n = sum_f V_fn / sum_f (W W^T V)_fn`` so that each frame's model
    has the frame's total magnitude. Frames that project to zero get a constant row instead.
    Measured in ``bench/nmf_speed.py``: it starts at a far lower loss than a constant H and
    reaches scikit-learn's 200-iteration loss in fewer iterations.
    """
    dtype = V.dtype
    WtV = W.T @ V
    model_sum = W.sum(axis=0) @ WtV  # (N,) = sum_f (W W^T V)_fn
    v_sum = V.sum(axis=0, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        s = np.where(model_sum > 0, v_sum / model_sum, 0.0)
    H = WtV * s.astype(dtype)
    # frames with no projection: spread the frame's sum evenly
    wsum = float(W.sum(dtype=np.float64))
    dead = ~(model_sum > 0)
    if dead.any() and wsum > 0:
        H[:, dead] = (v_sum[dead] / wsum).astype(dtype)
    np.maximum(H, 0, out=H)
    return np.ascontiguousarray(H, dtype=dtype)


def _randomized_svd(
    V: np.ndarray, K: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Leading K singular triplets (float64): exact for small matrices, else Halko et al."""
    F, N = V.shape
    r = min(F, N)
    A = V.astype(np.float64)
    if r <= 2 * K + 20 or F * N <= 200_000:
        U, s, Vt = np.linalg.svd(A, full_matrices=False)
        return U[:, :K], s[:K], Vt[:K]
    ell = min(K + 10, r)
    Q, _ = np.linalg.qr(A @ rng.standard_normal((N, ell)))
    for _ in range(4):
        Q, _ = np.linalg.qr(A.T @ Q)
        Q, _ = np.linalg.qr(A @ Q)
    Ub, s, Vt = np.linalg.svd(Q.T @ A, full_matrices=False)
    return (Q @ Ub)[:, :K], s[:K], Vt[:K]


def _nndsvd(
    V: np.ndarray, K: int, rng: np.random.Generator, *, fill: bool
) -> tuple[np.ndarray, np.ndarray]:
    """NNDSVD (Boutsidis & Gallopoulos 2008); ``fill``: zeros replaced by mean(V) (NNDSVDa).

    Components beyond the rank of V start random (scale ``sqrt(mean(V)/K)``), reproducibly.
    """
    F, N = V.shape
    U, S, Vt = _randomized_svd(V, K, rng)
    W = np.zeros((F, K))
    H = np.zeros((K, N))
    r = S.shape[0]
    W[:, 0] = np.sqrt(S[0]) * np.abs(U[:, 0])
    H[0, :] = np.sqrt(S[0]) * np.abs(Vt[0, :])
    for j in range(1, r):
        x, y = U[:, j], Vt[j, :]
        xp, yp = np.maximum(x, 0), np.maximum(y, 0)
        xn, yn = np.abs(np.minimum(x, 0)), np.abs(np.minimum(y, 0))
        xpn, ypn = np.linalg.norm(xp), np.linalg.norm(yp)
        xnn, ynn = np.linalg.norm(xn), np.linalg.norm(yn)
        mp, mn = xpn * ypn, xnn * ynn
        if mp > mn:
            u, v, sigma = xp / xpn, yp / ypn, mp
        elif mn > 0:
            u, v, sigma = xn / xnn, yn / ynn, mn
        else:
            continue
        lbd = np.sqrt(S[j] * sigma)
        W[:, j] = lbd * u
        H[j, :] = lbd * v
    W[W < 1e-6] = 0
    H[H < 1e-6] = 0
    avg = float(V.mean(dtype=np.float64))
    if r < K:
        a = np.sqrt(avg / K)
        W[:, r:] = a * np.abs(rng.standard_normal((F, K - r)))
        H[r:, :] = a * np.abs(rng.standard_normal((K - r, N)))
    if fill:
        W[W == 0] = avg
        H[H == 0] = avg
    return W, H


def _normalise(Wt: np.ndarray, H: np.ndarray, learn: np.ndarray | None, w_norm: str) -> None:
    """Unit-norm learned rows of ``W^T`` (columns of W), scale moved into H (WH unchanged)."""
    rows = Wt if learn is None else Wt[learn]
    if w_norm == "l2":
        norms = np.sqrt(np.einsum("kf,kf->k", rows, rows, dtype=np.float64))
    else:
        norms = rows.sum(axis=1, dtype=np.float64)
    ok = norms > 0
    if ok.all():
        sel: Any = slice(None) if learn is None else learn
        Wt[sel] = rows / norms[:, None].astype(Wt.dtype)
        H[sel] *= norms[:, None].astype(H.dtype)
        return
    idx = np.flatnonzero(ok) if learn is None else learn[ok]
    Wt[idx] = rows[ok] / norms[ok, None].astype(Wt.dtype)
    H[idx] *= norms[ok, None].astype(H.dtype)


# --------------------------------------------------------------------------------------------
# multiplicative updates
# --------------------------------------------------------------------------------------------


def _gamma(beta: float) -> float:
    """MM exponent of Févotte & Idier (2011)."""
    if beta < 1:
        return 1.0 / (2.0 - beta)
    if beta > 2:
        return 1.0 / (beta - 1.0)
    return 1.0


def _exponent(beta: float, l2_type: bool) -> float:
    """Exponent of the update; with an L2-type term and beta < 2 see the module docstring."""
    if l2_type and beta < 2:
        return 1.0 / (3.0 - beta)
    return _gamma(beta)


class _Run:
    """Loop settings shared by every (sub)problem."""

    def __init__(self, p: dict[str, Any]) -> None:
        self.max_iter = p["max_iter"]
        self.tol = p["tol"]
        self.check_every = p["check_every"]
        self.callback = p["callback"]
        self.compute_loss = p["compute_loss"]
        self.checks = self.compute_loss and (p["tol"] > 0 or p["callback"] is not None)


class _Problem:
    """``V ~= Wt.T @ H`` with buffers; H and the learned rows of Wt are updated in place."""

    def __init__(
        self,
        p: dict[str, Any],
        V: np.ndarray,
        Wt: np.ndarray,
        H: np.ndarray,
        shared: dict[str, Any] | None = None,
    ) -> None:
        from nmfsep import _kernels

        self.k = _kernels
        if p["beta"] <= 0 and V.min() < p["eps"]:
            # D(0 | y) is infinite for beta <= 0: the objective floors V at eps, and so must
            # the updates, or they would minimise another function (and the objective rise)
            V = np.maximum(V, V.dtype.type(p["eps"]))
        self.V, self.Wt, self.H = V, Wt, H
        self.v = V.reshape(-1)
        dt = V.dtype
        self.beta = b = p["beta"]
        self.eps = dt.type(p["eps"])
        self.eps64 = float(p["eps"])
        self.one = dt.type(1.0)
        self.bm2 = dt.type(b - 2.0)
        # the denominators are floored only to avoid 0/0 (a silent basis or frame): an absolute
        # floor at eps would shrink the updates of data of small scale (beta > 2 collapsed H)
        self.tiny = float(np.finfo(dt).tiny)
        self.big = float(np.sqrt(np.finfo(dt).max)) / max(p["K"], 1)
        self.learn = p["learn"]
        self.update_H = p["update_H"]
        self.learn_W = self.learn is None or self.learn.size > 0
        self.fixed = not self.learn_W
        self.w_norm = p["w_norm"]
        self.l1_H, self.l2_H, self.l1_W, self.l2_W = p["l1_H"], p["l2_H"], p["l1_W"], p["l2_W"]
        self.cont: np.ndarray | None = p.get("cont_lam")  # per-row continuity weight, or None
        K, (F, N) = H.shape[0], V.shape
        self.buf = np.empty((F, N), dt) if b != 2 else None
        self.buf2 = np.empty((F, N), dt) if b not in (1.0, 2.0) else None
        self.numH = np.empty((K, N), dt)
        self.denH = np.empty((K, N), dt)
        self.half_v2 = 0.5 * float(np.einsum("ij,ij->", V, V, dtype=np.float64)) if b == 2 else 0.0
        self.linH = np.full(K, self.l1_H)
        self.quadH = np.full(K, self.l2_H)
        self.zerosK = np.zeros(K)
        if p["compute_loss"]:
            self._loss_setup()
        self.shared = {} if shared is None else shared  # W-fixed products, shared by blocks
        self._wtv: np.ndarray | None = None
        # float32 Euclidean: the trace-trick loss 0.5|V|^2 - <H, W^T V> + 0.5 <H, W^T W H> with
        # float32 products cancels catastrophically (rounding noise of ~1e-7 |V|^2 that changes
        # at every check, far above the decrease near convergence). Checks therefore use, with W
        # fixed, the float64 Gram matrix W^T W (once) and a float64 (K, K) x (K, N) product per
        # check: the loss is then an exact function of H for the fixed W^T V the updates use;
        # with W learned, the residual V - WH summed in float64 (one extra product per check).
        self.robust32 = b == 2 and dt == np.float32
        self.wpen = 0.0  # penalty of W when fixed (constant)
        if self.fixed:
            self.wpen = self._w_penalty()

    # -- objective ---------------------------------------------------------------------------
    def _w_penalty(self) -> float:
        s = 0.0
        if self.l1_W:
            s += self.l1_W * float(self.Wt.sum(dtype=np.float64))
        if self.l2_W:
            s += 0.5 * self.l2_W * float(np.einsum("ij,ij->", self.Wt, self.Wt, dtype=np.float64))
        return s

    def penalty(self) -> float:
        s = self.wpen if self.fixed else self._w_penalty()
        if self.l1_H:
            s += self.l1_H * float(self.H.sum(dtype=np.float64))
        if self.l2_H:
            s += 0.5 * self.l2_H * float(np.einsum("ij,ij->", self.H, self.H, dtype=np.float64))
        if self.cont is not None:
            s += float(self.k.continuity_sum(self.H, self.cont))
        return s

    def _loss_setup(self) -> None:
        """Constants of the KL / IS losses (float32 data), so that a check costs one fused pass."""
        b, V, eps = self.beta, self.V, self.eps64
        self.fast_loss = V.dtype == np.float32 and b in (0.0, 1.0)
        if not self.fast_loss:
            return
        self.vlog = self.v
        self.log_eps = float(np.log(np.float32(eps)))
        small = V <= eps if b == 1 else V < eps
        if b == 1:
            if small.any():
                self.vlog = np.where(small, 0, V).reshape(-1)
            x = V[~small].astype(np.float64)
            self.div_const = float(np.sum(x * np.log(x) - x))
        else:
            if small.any():
                self.vlog = np.maximum(V, V.dtype.type(eps)).reshape(-1)
            x = self.vlog.astype(np.float64)
            self.div_const = -float(np.sum(np.log(x))) - x.size

    def _div_of_buf(self) -> float:
        """Beta-divergence of V and the ``WH`` held in ``self.buf``."""
        assert self.buf is not None
        b, k, wh = self.beta, self.k, self.buf.reshape(-1)
        if not self.fast_loss:
            return float(k.div_sum(self.v, wh, b, self.eps64))
        fn = k.kl_loss32 if b == 1 else k.is_loss32
        return self.div_const + float(
            fn(self.vlog, wh, wh.view(np.int32), self.eps64, self.log_eps)
        )

    def _frob_loss64(self) -> float:
        """Euclidean loss of the current state, accurate in float64 (float32 data)."""
        Wt, H = self.Wt, self.H
        if self.fixed:
            assert self._wtv is not None
            G = self.shared.get("wtw64")
            if G is None:
                W64 = Wt.astype(np.float64)
                G = self.shared["wtw64"] = W64 @ W64.T
            H64 = H.astype(np.float64)
            d = self.half_v2 - float(np.einsum("kn,kn->", H64, self._wtv, dtype=np.float64))
            d += 0.5 * float(np.einsum("kn,kn->", H64, G @ H64))
            return max(d, 0.0)
        return _half_sq_residual(self.V, Wt, H, self.k)

    def objective(self) -> float:
        """Objective of the current state, computed directly (used when H is not updated)."""
        WH = self.Wt.T @ self.H
        d = self.k.div_sum(self.v, WH.reshape(-1), self.beta, self.eps64)
        return float(d) + self.penalty()

    # -- H step ------------------------------------------------------------------------------
    def _cached(self, name: str, fn: Callable[[], np.ndarray]) -> np.ndarray:
        if not self.fixed:
            return fn()
        val = self.shared.get(name)
        if val is None:
            val = self.shared[name] = fn()
        return val

    def h_prepare(self, want_loss: bool) -> float | None:
        """First half of the H update (W H, or the Euclidean products); loss of the state."""
        Wt, H = self.Wt, self.H
        if self.beta == 2:
            if self.fixed:
                if self._wtv is None:
                    self._wtv = Wt @ self.V
                wtv = self._wtv
            else:
                wtv = np.matmul(Wt, self.V, out=self.numH)
            self.wtv = wtv
            wtw = self._cached("wtw", lambda: Wt @ Wt.T)
            np.matmul(wtw, H, out=self.denH)
            if not want_loss:
                return None
            if self.robust32:
                return self._frob_loss64() + self.penalty()
            d = self.half_v2 + self.k.frob_terms(
                H.reshape(-1), wtv.reshape(-1), self.denH.reshape(-1)
            )
            return max(float(d), 0.0) + self.penalty()
        assert self.buf is not None
        np.matmul(Wt.T, H, out=self.buf)
        if not want_loss:
            return None
        return self._div_of_buf() + self.penalty()

    def h_finish(self) -> None:
        """Second half of the H update (after :meth:`h_prepare`)."""
        k, b, Wt = self.k, self.beta, self.Wt
        if b == 2:
            num, den = self.wtv, self.denH
        else:
            assert self.buf is not None
            buf = self.buf.reshape(-1)
            num = self.numH
            if b == 1:
                k.ratio_kl(self.v, buf, self.eps)
                np.matmul(Wt, self.buf, out=num)
                den = self._cached("colsum", lambda: Wt.sum(axis=1, keepdims=True))
            else:
                assert self.buf2 is not None
                if b == 0:
                    k.ratio_is(self.v, buf, self.buf2.reshape(-1), self.eps, self.one)
                else:
                    k.ratio_beta(self.v, buf, self.buf2.reshape(-1), self.eps, self.bm2)
                np.matmul(Wt, self.buf2, out=num)
                den = np.matmul(Wt, self.buf, out=self.denH)
        if self.cont is not None:
            self.k.mu_continuity(
                self.H, num, den, self.linH, self.quadH, self.zerosK, self.cont,
                _exponent(b, self.l2_H > 0), _exponent(b, True), b == 1, self.tiny, self.big,
            )  # fmt: skip
            return
        self._update(self.H, num, den, self.linH, self.quadH, self.zerosK, self.l2_H > 0)

    def _update(
        self,
        x: np.ndarray,
        num: np.ndarray,
        den: np.ndarray,
        lin: np.ndarray,
        quad: np.ndarray,
        qconst: np.ndarray,
        l2_type: bool,
    ) -> None:
        """``x <- x * r`` (see :func:`nmfsep._kernels.mu_update`), fast path when possible."""
        b = self.beta
        expo = _exponent(b, l2_type)
        if not l2_type and expo in (1.0, 0.5):
            dt = x.dtype.type
            self.k.mu_plain(
                x, num, den, lin.astype(x.dtype), expo == 0.5, dt(self.tiny), dt(self.big)
            )
            return
        self.k.mu_update(
            x, num, den, lin, quad, qconst, expo, b == 1 and l2_type, self.tiny, self.big
        )

    # -- W step ------------------------------------------------------------------------------
    def w_step(self) -> None:
        k, b, Wt, H, V = self.k, self.beta, self.Wt, self.H, self.V
        learn = self.learn
        HL = H if learn is None else H[learn]
        if b == 2:
            num = HL @ V.T
            den = (HL @ H.T) @ Wt
        else:
            assert self.buf is not None
            np.matmul(Wt.T, H, out=self.buf)
            buf = self.buf.reshape(-1)
            if b == 1:
                k.ratio_kl(self.v, buf, self.eps)
                num = HL @ self.buf.T
                den = HL.sum(axis=1, keepdims=True)
            else:
                assert self.buf2 is not None
                if b == 0:
                    k.ratio_is(self.v, buf, self.buf2.reshape(-1), self.eps, self.one)
                else:
                    k.ratio_beta(self.v, buf, self.buf2.reshape(-1), self.eps, self.bm2)
                num = HL @ self.buf2.T
                den = HL @ self.buf.T
        KL = HL.shape[0]
        lin, quad, qconst = np.zeros(KL), np.zeros(KL), np.zeros(KL)
        if self.w_norm is None:
            lin[:] = self.l1_W
            quad[:] = self.l2_W
        elif self.l1_H or self.l2_H:
            a = HL.sum(axis=1, dtype=np.float64)
            bb = np.einsum("kn,kn->k", HL, HL, dtype=np.float64)
            if self.w_norm == "l2":
                quad[:] = self.l1_H * a + self.l2_H * bb
            else:
                lin[:] = self.l1_H * a
                qconst[:] = self.l2_H * bb
        l2_type = bool((quad > 0).any() or (qconst > 0).any())
        WtL = Wt if learn is None else np.ascontiguousarray(Wt[learn])
        self._update(
            WtL, np.ascontiguousarray(num), np.ascontiguousarray(den), lin, quad, qconst, l2_type
        )
        if learn is not None:
            Wt[learn] = WtL
        if self.w_norm is not None:
            _normalise(Wt, H, learn, self.w_norm)


def _iterate(prob: _Problem, run: _Run, *, live: bool) -> tuple[int, list[float], bool]:
    """The MU loop with convergence checks; returns (n_iter, losses, converged)."""
    losses: list[float] = []
    prev = np.inf
    initial = np.inf
    n = 0
    converged = False
    update_H, learn_W = prob.update_H, prob.learn_W
    if not run.compute_loss:
        # no objective at all: exactly max_iter iterations (nothing to stop on)
        for _ in range(run.max_iter):
            if update_H:
                prob.h_prepare(False)
                prob.h_finish()
            if learn_W:
                prob.w_step()
        return run.max_iter if (update_H or learn_W) else 0, [], False
    if not update_H and not learn_W:
        return 0, [prob.objective()], True
    ce, max_iter, tol = run.check_every, run.max_iter, run.tol
    while True:
        check = n == 0 or n == max_iter or (run.checks and n % ce == 0)
        if update_H:
            loss = prob.h_prepare(check)
        else:
            loss = prob.objective() if check else None
        if loss is not None:
            losses.append(loss)
            if live and run.callback is not None:
                run.callback(n, loss)
            if n == 0:
                initial = loss
            elif tol > 0 and prev - loss <= tol * initial:
                converged = True
                break
            prev = loss
        if n >= max_iter:
            break
        if update_H:
            prob.h_finish()
        if learn_W:
            prob.w_step()
        n += 1
    return n, losses, converged


#: Frames per chunk of the float64 products of the robust float32 Euclidean loss.
_CHUNK_FRAMES = 2048


def _half_sq_residual(V: np.ndarray, Wt: np.ndarray, H: np.ndarray, k: Any) -> float:
    """``0.5 * ||V - Wt.T @ H||^2`` accumulated in float64, in chunks of frames (bounded memory)."""
    N = V.shape[1]
    total = 0.0
    buf: np.ndarray | None = None
    for j0 in range(0, N, _CHUNK_FRAMES):
        j1 = min(j0 + _CHUNK_FRAMES, N)
        if buf is None or buf.shape[1] != j1 - j0:
            buf = np.empty((V.shape[0], j1 - j0), V.dtype)
        np.matmul(Wt.T, H[:, j0:j1], out=buf)
        total += float(k.half_sq_diff(V, buf, j0))
    return total


def _block_frames(p: dict[str, Any]) -> int:
    """Frames per block for the H-only problem so that the per-iteration data fit in L2."""
    F, N, K = p["F"], p["N"], p["K"]
    item = np.dtype(p["dtype"]).itemsize
    if p.get("cont_lam") is not None:
        # continuity couples neighbouring frames (and sigma_k is over all of them): one block
        return N
    if p["beta"] == 2:
        # per iteration only (K, N) arrays are touched (W^T V and W^T W are cached): blocks
        # would only add overhead
        return N
    n_big = 2 if p["beta"] == 1 else 3  # V and the ratio buffer(s)
    per_frame = (n_big * F + 2 * K) * item
    B = max(16, int(_H_BLOCK_BYTES // per_frame))
    if B >= N:
        return N
    n_blocks = -(-N // B)
    return -(-N // n_blocks)  # equal blocks


def _solve_h_only(
    p: dict[str, Any], Wt: np.ndarray, H: np.ndarray, run: _Run
) -> tuple[int, list[float], bool]:
    """All of W fixed: frames are independent; solve cache-sized blocks one after the other.

    Each block is iterated to its own convergence (the blocks' objectives add up, and a block
    whose decrease relative to its own initial objective is below ``tol`` keeps its value, so
    the total objective at each check is well defined and non-increasing). ``losses[c]`` is the
    total at check ``c``.
    """
    N = p["N"]
    B = _block_frames(p)
    if B >= N:
        return _iterate(_Problem(p, p["V"], Wt, H), run, live=True)
    shared: dict[str, Any] = {}
    block_losses: list[list[float]] = []
    n_iters: list[int] = []
    conv = True
    for j0 in range(0, N, B):
        j1 = min(j0 + B, N)
        Vb = np.ascontiguousarray(p["V"][:, j0:j1])
        Hb = np.ascontiguousarray(H[:, j0:j1])
        prob = _Problem(p, Vb, Wt, Hb, shared)
        prob.wpen = 0.0  # the (constant) W penalty is added once to the total below
        n_b, l_b, c_b = _iterate(prob, run, live=False)
        H[:, j0:j1] = Hb
        block_losses.append(l_b)
        n_iters.append(n_b)
        conv = conv and c_b
    n_iter = max(n_iters)
    n_checks = max(len(lb) for lb in block_losses)
    wpen = _Problem(p, p["V"][:, :1], Wt, H[:, :1]).wpen
    losses = [
        wpen + float(sum(lb[min(c, len(lb) - 1)] for lb in block_losses)) for c in range(n_checks)
    ]
    if run.callback is not None:
        ce = run.check_every
        for c, loss in enumerate(losses):
            it = n_iter if c == n_checks - 1 else (c * ce if run.checks else 0)
            run.callback(it, loss)
    return n_iter, losses, conv
