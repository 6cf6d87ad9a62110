"""Fused element-wise kernels of the multiplicative updates (private; used by :mod:`nmfsep.nmf`).

Every kernel works in place on C-contiguous arrays, without temporaries. The big
``(n_freq, n_frames)`` kernels take flattened (1-D) views so that LLVM vectorises them; scalars
(``eps``, ``one``) are passed in the array's dtype so that float32 data is processed in float32
arithmetic. Sums are accumulated in float64. ``error_model="numpy"`` (no ZeroDivisionError
branch) is what lets the loops vectorise. ``cache=True`` keeps compiled code between runs.
"""

from __future__ import annotations

import math

from numba import njit


@njit(cache=True, nogil=True, error_model="numpy")
def ratio_kl(v, wh, eps):  # pragma: no cover - compiled
    """``wh <- v / max(wh, eps)`` (the KL ratio), in place."""
    for i in range(v.size):
        d = wh[i]
        if d < eps:
            d = eps
        wh[i] = v[i] / d


@njit(cache=True, nogil=True, error_model="numpy")
def ratio_is(v, wh, a, eps, one):  # pragma: no cover - compiled
    """Itakura–Saito terms: ``wh <- 1 / wh_e``, ``a <- v / wh_e**2``, ``wh_e = max(wh, eps)``."""
    for i in range(v.size):
        d = wh[i]
        if d < eps:
            d = eps
        t = one / d
        wh[i] = t
        a[i] = v[i] * t * t


@njit(cache=True, nogil=True, error_model="numpy")
def ratio_beta(v, wh, a, eps, bm2):  # pragma: no cover - compiled
    """General beta: ``a <- v * wh_e**(beta-2)`` and ``wh <- wh_e**(beta-1)``."""
    for i in range(v.size):
        d = wh[i]
        if d < eps:
            d = eps
        t = d**bm2
        a[i] = v[i] * t
        wh[i] = t * d


@njit(cache=True, nogil=True, error_model="numpy")
def div_sum(v, wh, beta, eps):  # pragma: no cover - compiled
    """Summed beta-divergence ``D(v | wh)`` in float64 (definition: see ``nmf.beta_divergence``)."""
    s = 0.0
    n = v.size
    if beta == 2.0:
        for i in range(n):
            d = float(v[i]) - float(wh[i])
            s += d * d
        return 0.5 * s
    if beta == 1.0:
        for i in range(n):
            x = float(v[i])
            y = float(wh[i])
            s += y
            if x > eps:
                if y < eps:
                    y = eps
                s += x * math.log(x / y) - x
        return s
    if beta == 0.0:
        for i in range(n):
            x = float(v[i])
            y = float(wh[i])
            if x < eps:
                x = eps
            if y < eps:
                y = eps
            r = x / y
            s += r - math.log(r) - 1.0
        return s
    c = 1.0 / (beta * (beta - 1.0))
    if beta > 0.0:
        for i in range(n):
            x = float(v[i])
            y = float(wh[i])
            if x > eps:
                ye = y if y > eps else eps
                t = c * (x**beta + (beta - 1.0) * y**beta - beta * x * ye ** (beta - 1.0))
                s += t if t > 0.0 else 0.0  # >= 0 exactly; rounding could make it negative
            else:
                s += y**beta / beta
        return s
    for i in range(n):
        x = float(v[i])
        y = float(wh[i])
        if x < eps:
            x = eps
        if y < eps:
            y = eps
        t = c * (x**beta + (beta - 1.0) * y**beta - beta * x * y ** (beta - 1.0))
        s += t if t > 0.0 else 0.0
    return s


@njit(cache=True, nogil=True, error_model="numpy")
def frob_terms(h, wtv, wtwh):  # pragma: no cover - compiled
    """``sum(h * (0.5 * wtwh - wtv))`` in float64 (Euclidean loss by the trace trick)."""
    s = 0.0
    for i in range(h.size):
        s += float(h[i]) * (0.5 * float(wtwh[i]) - float(wtv[i]))
    return s


@njit(cache=True, nogil=True, error_model="numpy")
def half_sq_diff(V, B, j0):  # pragma: no cover - compiled
    """``0.5 * sum((V[:, j0:j0+m] - B)**2)`` in float64 (``B`` of shape (F, m))."""
    F, m = B.shape
    s = 0.0
    for f in range(F):
        for j in range(m):
            d = float(V[f, j0 + j]) - float(B[f, j])
            s += d * d
    return 0.5 * s


@njit(inline="always", error_model="numpy")
def _terms(num, den, k, j, dcols):  # pragma: no cover - compiled
    """The denominator (``den`` of shape (K, M) or (K, 1)) and the numerator (floored at 0) of
    element ``(k, j)``, in float64."""
    p = float(den[k, 0]) if dcols == 1 else float(den[k, j])
    q = float(num[k, j])
    return p, max(q, 0.0)


@njit(inline="always", error_model="numpy")
def _mu_step(xv, q, pl, mu, root, expo, tiny, big):  # pragma: no cover - compiled
    """One element's multiplicative step: ``xv * r`` capped at ``big``, ``r`` the positive root
    of ``mu r^2 + pl r - q = 0`` when ``root`` (and ``mu > 0``), else ``(q / (pl + mu))**expo``
    (the denominator floored at ``tiny``)."""
    if root and mu > 0.0:
        if q > 0.0:
            r = 2.0 * q / (pl + math.sqrt(pl * pl + 4.0 * mu * q))
        else:
            r = 0.0
    else:
        dd = pl + mu
        if dd < tiny:
            dd = tiny
        r = q / dd
        if expo != 1.0:
            if expo == 0.5:
                r = math.sqrt(r)
            else:
                r = r**expo
    y = xv * r
    if y > big:
        y = big
    return y


@njit(cache=True, nogil=True, error_model="numpy")
def mu_update(x, num, den, lin, quad, qconst, expo, kl_root, tiny, big):  # pragma: no cover
    """One multiplicative update of ``x`` (K, M) in place, row ``k`` = component ``k``.

    ``x <- x * r`` with ``r = (num / (den + lin[k] + quad[k] * x + qconst[k])) ** expo``.
    ``den`` has shape (K, M) or (K, 1) (broadcast along the row). When ``kl_root`` is true
    (beta = 1 with an L2-type term ``mu = quad[k]*x + qconst[k] > 0``), ``r`` is instead the exact
    minimiser of the majorising function: the positive root of ``mu r^2 + (den + lin) r - num = 0``.
    Arithmetic in float64; results are capped at ``big`` so nothing overflows downstream.
    """
    K, M = x.shape
    dcols = den.shape[1]
    for k in range(K):
        lk = lin[k]
        qk = quad[k]
        ck = qconst[k]
        for j in range(M):
            xv = float(x[k, j])
            p, q = _terms(num, den, k, j, dcols)
            x[k, j] = _mu_step(xv, q, p + lk, qk * xv + ck, kl_root, expo, tiny, big)


_LN2 = math.log(2.0)
_SQRT2 = math.sqrt(2.0)


@njit(inline="always", error_model="numpy")
def _log_bits32(b):  # pragma: no cover - compiled
    """``log(x)`` in float64 from the int32 bits of a normal positive float32 ``x`` (~1e-10 rel)."""
    e = ((b >> 23) & 0xFF) - 127
    m = 1.0 + (b & 0x7FFFFF) * (1.0 / 8388608.0)
    if m > _SQRT2:
        m *= 0.5
        e += 1
    s = (m - 1.0) / (m + 1.0)
    s2 = s * s
    p = 1.0 + s2 * (
        1.0 / 3.0 + s2 * (0.2 + s2 * (1.0 / 7.0 + s2 * (1.0 / 9.0 + s2 * (1.0 / 11.0))))
    )
    return e * _LN2 + 2.0 * s * p


@njit(cache=True, nogil=True, error_model="numpy", fastmath={"reassoc", "nsz", "contract"})
def kl_loss32(v, wh, bits, eps, log_eps):  # pragma: no cover - compiled
    """float32 data: ``sum(wh - v * log(max(wh, eps)))`` in float64, vectorised log."""
    s = 0.0
    for i in range(v.size):
        d = float(wh[i])
        lg = _log_bits32(bits[i]) if d >= eps else log_eps
        s += d - float(v[i]) * lg
    return s


@njit(cache=True, nogil=True, error_model="numpy", fastmath={"reassoc", "nsz", "contract"})
def is_loss32(v, wh, bits, eps, log_eps):  # pragma: no cover - compiled
    """float32 data: ``sum(v / wh_e + log(wh_e))``, ``wh_e = max(wh, eps)``, in float64."""
    s = 0.0
    for i in range(v.size):
        d = float(wh[i])
        if d >= eps:
            lg = _log_bits32(bits[i])
        else:
            d = eps
            lg = log_eps
        s += float(v[i]) / d + lg
    return s


@njit(cache=True, nogil=True, error_model="numpy")
def mu_plain(x, num, den, lin, half, tiny, big):  # pragma: no cover - compiled
    """Fast path of :func:`mu_update` without L2-type terms and with exponent 1 (or 1/2 if
    ``half``), in the array's precision: ``x <- x * (num / max(den + lin[k], tiny)) ** e``."""
    K, M = x.shape
    bc = den.shape[1] == 1
    for k in range(K):
        lk = lin[k]
        if bc:
            d = den[k, 0] + lk
            if d < tiny:
                d = tiny
            for j in range(M):
                r = num[k, j] / d
                if half:
                    r = math.sqrt(r)
                y = x[k, j] * r
                x[k, j] = y if y < big else big
        else:
            for j in range(M):
                d = den[k, j] + lk
                if d < tiny:
                    d = tiny
                r = num[k, j] / d
                if half:
                    r = math.sqrt(r)
                y = x[k, j] * r
                x[k, j] = y if y < big else big


@njit(cache=True, nogil=True, error_model="numpy")
def mu_continuity(x, num, den, lin, quad, qconst, cw, e, e_l2, kl, tiny, big):  # pragma: no cover
    """:func:`mu_update` with Virtanen's temporal-continuity penalty on the rows ``cw[0, k] > 0``.

    The penalty of row ``k`` is ``lam * M * D_k / S_k`` with ``lam = cw[0, k]``, ``D_k = sum_j
    (x_kj - x_k,j-1)^2`` and ``S_k = cw[1, k] + sum_j x_kj^2`` (Virtanen 2007, eq. 5:
    ``1/sigma^2 = M / S``; ``cw[1]`` a floor). With ``c = lam M / S`` and ``rho = D / S`` taken at
    the current row (``nmf.py``, "Temporal continuity"), element ``j`` adds ``2 c (s_j + rho
    x_j)`` to the numerator (``s_j``: the sum of its neighbours) and the L2-type term ``mu = 2 c
    n_j x_j`` (``n_j``: how many neighbours).
    The even frames of a row are updated first, then the odd ones with their even neighbours
    already updated (Gauss-Seidel): with the neighbours held, the penalty is separable.
    Rows with a continuity or L2-type term use exponent ``e_l2`` (and the KL root when ``kl``),
    the others ``e``. ``den`` has shape (K, M) or (K, 1). Float64 arithmetic, capped at ``big``.
    """
    K, M = x.shape
    dcols = den.shape[1]
    for k in range(K):
        c = 0.0
        rho = 0.0
        lam = cw[0, k]
        if lam > 0.0 and M > 1:
            d2 = 0.0
            prev = float(x[k, 0])
            s2 = cw[1, k] + prev * prev
            for j in range(1, M):
                v = float(x[k, j])
                s2 += v * v
                d2 += (v - prev) * (v - prev)
                prev = v
            if s2 > 0.0:
                c = lam * M / s2
                rho = d2 / s2
        lk = lin[k]
        qk = quad[k]
        ck = qconst[k]
        l2row = c > 0.0 or qk > 0.0 or ck > 0.0
        ex = e_l2 if l2row else e
        root = kl and l2row
        for parity in range(2):
            for j in range(parity, M, 2):
                xv = float(x[k, j])
                p, q = _terms(num, den, k, j, dcols)
                mu = qk * xv + ck
                if c > 0.0:
                    s = 0.0
                    n = 0.0
                    if j > 0:
                        s += float(x[k, j - 1])
                        n += 1.0
                    if j < M - 1:
                        s += float(x[k, j + 1])
                        n += 1.0
                    q += 2.0 * c * (s + rho * xv)
                    mu += 2.0 * c * n * xv
                x[k, j] = _mu_step(xv, q, p + lk, mu, root, ex, tiny, big)


@njit(cache=True, nogil=True, error_model="numpy")
def continuity_sum(x, cw):  # pragma: no cover - compiled
    """Virtanen's penalty ``sum_k cw[0, k] * M * D_k / S_k`` (see :func:`mu_continuity`),
    float64; a silent row (``S_k = 0``) or a single frame counts 0."""
    K, M = x.shape
    total = 0.0
    if M < 2:
        return 0.0
    for k in range(K):
        lam = cw[0, k]
        if lam <= 0.0:
            continue
        prev = float(x[k, 0])
        s2 = cw[1, k] + prev * prev
        d2 = 0.0
        for j in range(1, M):
            v = float(x[k, j])
            s2 += v * v
            d2 += (v - prev) * (v - prev)
            prev = v
        if s2 > 0.0:
            total += lam * M * d2 / s2
    return total


@njit(cache=True, nogil=True, error_model="numpy")
def recursive_smooth(P, alpha, out):  # pragma: no cover - compiled
    """``out[f, t] = alpha out[f, t-1] + (1 - alpha) P[f, t]`` from the mean of the first (up
    to 8) frames of each row (nmfsep.tracking.smooth), in float64."""
    F, T = P.shape
    n0 = min(T, 8)
    b = 1.0 - alpha
    for f in range(F):
        acc = 0.0
        for t in range(n0):
            acc += float(P[f, t])
        acc /= max(n0, 1)
        for t in range(T):
            acc = alpha * acc + b * float(P[f, t])
            out[f, t] = acc


@njit(cache=True, nogil=True, error_model="numpy")
def dd_recursion(gamma, alpha, xi_min, G):  # pragma: no cover - compiled
    """Decision-directed a-priori SNR and Wiener gain along each row of the a-posteriori SNR
    ``gamma`` (nmfsep.tracking.dd_gain), in float64."""
    F, T = gamma.shape
    b = 1.0 - alpha
    for f in range(F):
        prev = 0.0
        for t in range(T):
            g = float(gamma[f, t])
            xi = alpha * prev + b * max(g - 1.0, 0.0)
            if xi < xi_min:
                xi = xi_min
            gt = xi / (1.0 + xi)
            G[f, t] = gt
            prev = gt * gt * g
