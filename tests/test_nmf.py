"""Tests of nmfsep.nmf: loss, multiplicative updates, checks (small synthetic matrices only)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import nmfsep.nmf as nmf_mod
from nmfsep.errors import ParameterError
from nmfsep.nmf import NMFResult, beta_divergence, fit_nmf

EPS = float(np.finfo(np.float32).eps)
BETAS = [0.0, 0.5, 1.0, 1.5, 2.0, 3.0]


def data(F=14, N=18, *, seed=0, zeros=True, dtype=np.float64):
    """Spectrogram-like non-negative data (heavy tailed, some exact zeros)."""
    rng = np.random.default_rng(seed)
    V = rng.gamma(0.6, 1.0, size=(F, N)) * rng.gamma(2.0, 1.0, size=(F, 1))
    if zeros:
        V[rng.random((F, N)) < 0.08] = 0.0
    return V.astype(dtype)


def start(V, K=3, seed=1):
    rng = np.random.default_rng(seed)
    F, N = V.shape
    return rng.random((F, K)) + 0.1, rng.random((K, N)) + 0.1


def objective(V, W, H, beta, l1_H=0.0, l2_H=0.0, l1_W=0.0, l2_W=0.0):
    return (
        beta_divergence(V, W @ H, beta)
        + l1_H * H.sum()
        + 0.5 * l2_H * (H**2).sum()
        + l1_W * W.sum()
        + 0.5 * l2_W * (W**2).sum()
    )


def record(**kw):
    """fit_nmf with the objective recorded at every iteration."""
    seen: list[tuple[int, float]] = []
    kw.setdefault("tol", 0.0)
    res = fit_nmf(check_every=1, callback=lambda n, loss: seen.append((n, loss)), **kw)
    return res, seen


# --------------------------------------------------------------------------------------------
# slow, obvious references
# --------------------------------------------------------------------------------------------


def ref_divergence(V, Y, beta, eps=EPS):
    """Element by element, float64, with the documented conventions for zeros."""
    total = 0.0
    for x, y in zip(np.ravel(V).astype(float), np.ravel(Y).astype(float), strict=True):
        if beta == 2:
            total += 0.5 * (x - y) ** 2
        elif beta == 1:
            total += y if x <= eps else x * np.log(x / max(y, eps)) - x + y
        elif beta == 0:
            x, y = max(x, eps), max(y, eps)
            total += x / y - np.log(x / y) - 1
        elif beta > 0 and x <= eps:
            total += y**beta / beta
        else:
            if beta < 0:
                x, y0 = max(x, eps), max(y, eps)
                y = y0
            else:
                y0 = max(y, eps)
            total += (x**beta + (beta - 1) * y**beta - beta * x * y0 ** (beta - 1)) / (
                beta * (beta - 1)
            )
    return total


def gamma(beta):
    return 1 / (2 - beta) if beta < 1 else (1 / (beta - 1) if beta > 2 else 1.0)


def ref_factor(q, p, lam, mu, beta, l2_type):
    """Textbook MU factor with the module's MM exponents (see nmfsep.nmf docstring)."""
    if beta == 1 and l2_type:
        P = p + lam
        root = 2 * q / (P + np.sqrt(P * P + 4 * mu * q) + (q == 0))
        return np.where(mu > 0, root, q / np.maximum(P, EPS))
    e = 1 / (3 - beta) if (l2_type and beta < 2) else gamma(beta)
    return (q / np.maximum(p + lam + mu, EPS)) ** e


def ref_fit(V, W, H, beta, n_iter, *, fixed=None, l1_H=0.0, l2_H=0.0, l1_W=0.0, l2_W=0.0,
            w_norm="l2", update_H=True):  # fmt: skip
    """Plain numpy multiplicative updates (H then W), float64."""
    V, W, H = (np.array(a, dtype=np.float64) for a in (V, W, H))
    if beta <= 0:  # D(0 | y) is infinite: V floored at eps, as in the objective
        V = np.maximum(V, EPS)
    K = W.shape[1]
    learn = np.ones(K, bool) if fixed is None else ~np.asarray(fixed)

    def normalise(W, H):
        if w_norm is None or not learn.any():
            return W, H
        n = np.linalg.norm(W, axis=0) if w_norm == "l2" else W.sum(axis=0)
        n = np.where(learn & (n > 0), n, 1.0)
        return W / n, H * n[:, None]

    def terms(W, H):
        if beta == 2:
            return V, W @ H
        WH = np.maximum(W @ H, EPS)
        return V * WH ** (beta - 2), WH ** (beta - 1)

    W, H = normalise(W, H)
    for _ in range(n_iter):
        if update_H:
            A, B = terms(W, H)
            H = H * ref_factor(W.T @ A, W.T @ B, l1_H, l2_H * H, beta, l2_H > 0)
        if learn.any():
            A, B = terms(W, H)
            a, b = H.sum(axis=1), (H**2).sum(axis=1)
            if w_norm is None:
                lam, mu = l1_W, l2_W * W
            elif w_norm == "l2":
                lam, mu = 0.0, (l1_H * a + l2_H * b)[None, :] * W
            else:
                lam, mu = (l1_H * a)[None, :], np.broadcast_to((l2_H * b)[None, :], W.shape)
            l2_type = bool(np.any(mu > 0))
            Wn = W * ref_factor(A @ H.T, B @ H.T, lam, mu, beta, l2_type)
            W[:, learn] = Wn[:, learn]
            W, H = normalise(W, H)
    return W, H


# --------------------------------------------------------------------------------------------
# beta_divergence
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("beta", [*BETAS, -1.0, 2.5])
def test_beta_divergence_matches_slow_reference(beta):
    V = data(6, 7, seed=3)
    Y = data(6, 7, seed=4)
    Y[0, 0] = 0.0  # model zero too
    got = beta_divergence(V, Y, beta)
    assert np.isfinite(got) and got > 0
    assert got == pytest.approx(ref_divergence(V, Y, beta), rel=1e-10)
    assert beta_divergence(V, V, beta) == pytest.approx(0.0, abs=1e-9 * got)


@pytest.mark.parametrize(
    ("name", "value"), [("euclidean", 2), ("Frobenius", 2), ("kl", 1), ("is", 0),
                        ("kullback-leibler", 1), ("itakura-saito", 0)],
)  # fmt: skip
def test_beta_names(name, value):
    V, Y = data(4, 5, seed=5, zeros=False), data(4, 5, seed=6, zeros=False)
    assert beta_divergence(V, Y, name) == beta_divergence(V, Y, value)


@pytest.mark.parametrize("beta", [0.0, 0.5, 1.0, 2.0, 3.0])
def test_beta_divergence_agrees_with_sklearn(beta):
    from sklearn.decomposition._nmf import _beta_divergence

    rng = np.random.default_rng(7)
    V = rng.random((8, 9)) + 0.05
    W, H = rng.random((8, 3)), rng.random((3, 9))
    assert beta_divergence(V, W @ H, beta) == pytest.approx(
        _beta_divergence(V, W, H, beta), rel=1e-9
    )


@pytest.mark.parametrize("beta", [*BETAS, -0.5])
def test_beta_divergence_zeros_are_finite(beta):
    Z = np.zeros((3, 4))
    for V, Y in ((Z, Z), (Z, Z + 1), (Z + 1, Z)):
        d = beta_divergence(V, Y, beta)
        assert np.isfinite(d) and d >= 0
    assert beta_divergence(Z + 1, Z, beta) > 0


def test_beta_divergence_float32_and_bad_input():
    V = data(5, 5, seed=8).astype(np.float32)
    assert beta_divergence(V, V + 1, 1) == pytest.approx(
        beta_divergence(V.astype(np.float64), V.astype(np.float64) + 1, 1), rel=1e-6
    )
    with pytest.raises(ParameterError, match="same shape"):
        beta_divergence(V, V[:, :2], 1)
    with pytest.raises(ParameterError, match="unknown beta"):
        beta_divergence(V, V, "hellinger")
    with pytest.raises(ParameterError, match="non-negative"):
        beta_divergence(-V - 1, V, 1)


# --------------------------------------------------------------------------------------------
# monotonicity of the penalised objective
# --------------------------------------------------------------------------------------------

CONFIGS = {
    "plain": dict(),
    "l1l2_H_norm_l2": dict(l1_H=0.3, l2_H=0.5),
    "l1l2_H_norm_l1": dict(l1_H=0.3, l2_H=0.5, w_norm="l1"),
    "all_pen_no_norm": dict(l1_H=0.2, l2_H=0.4, l1_W=0.3, l2_W=0.6, w_norm=None),
    "strong_l2": dict(l2_H=5.0, l1_H=0.05),
    "H_only_pen": dict(fixed_W=True, l1_H=0.2, l2_H=0.8),
    "partly_fixed_pen": dict(fixed_W=[0, 2], l1_H=0.3, l2_H=0.3),
    "W_only": dict(update_H=False, l1_H=0.1),
}


@pytest.mark.parametrize("config", list(CONFIGS))
@pytest.mark.parametrize("beta", BETAS)
def test_objective_never_increases(beta, config):
    kw = dict(CONFIGS[config])
    V = data(seed=11)
    W0, H0 = start(V, K=4, seed=12)
    res, seen = record(V=V, W=W0, H=H0, beta=beta, max_iter=60, **kw)
    losses = np.array([loss for _, loss in seen])
    assert [n for n, _ in seen] == list(range(61))
    np.testing.assert_array_equal(losses, res.losses)
    steps = np.diff(losses)
    assert np.all(steps <= 1e-10 * losses[:-1]), (config, steps.max())
    assert losses[-1] < 0.95 * losses[0]  # it did optimise
    pens = {k: kw.get(k, 0.0) for k in ("l1_H", "l2_H", "l1_W", "l2_W")}
    # the reported value is the true objective of the returned factors
    assert losses[-1] == pytest.approx(objective(V, res.W, res.H, beta, **pens), rel=1e-9)


def test_classic_l2_rule_can_increase_kl_objective_but_ours_does_not():
    """Why the L2 exponent is adapted: 'den + l2*H' overshoots for KL when l2*H dominates."""
    V = np.array([[4.0, 0.0], [0.0, 4.0]])
    W = np.eye(2)
    H = np.full((2, 2), 0.2)
    l2 = 10.0
    WH = W @ H
    q, p = W.T @ (V / WH), W.T @ np.ones_like(V)
    classic = H * q / (p + l2 * H)
    obj = lambda H_: objective(V, W, H_, 1.0, l2_H=l2)  # noqa: E731
    assert obj(classic) > obj(H)  # the textbook rule goes up here
    res = fit_nmf(V, W=W, H=H, fixed_W=True, beta=1, l2_H=l2, max_iter=1, tol=0)
    assert obj(res.H) <= obj(H)


# --------------------------------------------------------------------------------------------
# agreement with the slow reference and with scikit-learn
# --------------------------------------------------------------------------------------------

REF_CONFIGS = {
    "plain": dict(),
    "pen_l2": dict(l1_H=0.2, l2_H=0.3),
    "pen_l1norm": dict(l1_H=0.2, l2_H=0.3, w_norm="l1"),
    "no_norm_pen_W": dict(l1_W=0.1, l2_W=0.2, l2_H=0.1, w_norm=None),
    "fixed_all": dict(fixed=np.array([True, True, True]), l1_H=0.1),
    "fixed_some": dict(fixed=np.array([True, False, True]), l2_H=0.2),
}


@pytest.mark.parametrize("config", list(REF_CONFIGS))
@pytest.mark.parametrize("beta", BETAS)
def test_matches_reference_mu(beta, config, monkeypatch):
    kw = dict(REF_CONFIGS[config])
    fixed = kw.pop("fixed", None)
    V = data(seed=21)
    W0, H0 = start(V, seed=22)
    # small blocks: the blocked H-only solver must give the same iterates
    monkeypatch.setattr(nmf_mod, "_H_BLOCK_BYTES", 2048)
    res = fit_nmf(V, W=W0, H=H0, beta=beta, fixed_W=False if fixed is None else fixed,
                  max_iter=6, tol=0, **kw)  # fmt: skip
    Wr, Hr = ref_fit(V, W0, H0, beta, 6, fixed=fixed, **kw)
    np.testing.assert_allclose(res.W, Wr, rtol=1e-9, atol=1e-13)
    np.testing.assert_allclose(res.H, Hr, rtol=1e-9, atol=1e-13)


@pytest.mark.parametrize("beta", [2.0, 1.0, 0.0])
def test_agrees_with_sklearn_from_same_init(beta):
    from sklearn.decomposition import non_negative_factorization

    V = data(seed=31, zeros=False)  # sklearn refuses zeros for beta <= 0
    K = 3
    W0, H0 = start(V, K=K, seed=32)
    ours = fit_nmf(V, W=W0, H=H0, beta=beta, w_norm=None, max_iter=40, tol=0)
    Wsk, Hsk, _ = non_negative_factorization(
        V.T, W=H0.T.copy(), H=W0.T.copy(), n_components=K, init="custom", solver="mu",
        beta_loss=beta, max_iter=40, tol=0,
    )  # fmt: skip
    np.testing.assert_allclose(ours.W, Hsk.T, rtol=1e-7)
    np.testing.assert_allclose(ours.H, Wsk.T, rtol=1e-7)
    # normalised W: same model W @ H (rescaling commutes with unpenalised MU)
    normed = fit_nmf(V, W=W0, H=H0, beta=beta, max_iter=40, tol=0)
    np.testing.assert_allclose(normed.W @ normed.H, Hsk.T @ Wsk.T, rtol=1e-7)
    # H-only: scikit-learn's transform path (constant start)
    avg = np.sqrt(V.mean() / K)
    Hc = np.full((K, V.shape[1]), avg)
    h_only = fit_nmf(V, W=W0, H=Hc, fixed_W=True, beta=beta, max_iter=40, tol=0)
    Wsk2, _, _ = non_negative_factorization(
        V.T, H=np.ascontiguousarray(W0.T), n_components=K, init="custom", update_H=False,
        solver="mu", beta_loss=beta, max_iter=40, tol=0,
    )  # fmt: skip
    np.testing.assert_allclose(h_only.H, Wsk2.T, rtol=1e-7)


@pytest.mark.parametrize("beta", [2.0, 1.0, 0.0])
def test_float32_loss_matches_float64(beta):
    V = data(40, 60, seed=33, zeros=False)
    W0, H0 = start(V, K=5, seed=34)
    r64 = fit_nmf(V, W=W0, H=H0, beta=beta, max_iter=50, tol=0)
    r32 = fit_nmf(V.astype(np.float32), W=W0, H=H0, beta=beta, max_iter=50, tol=0)
    assert r32.W.dtype == np.float32 and r32.H.dtype == np.float32
    assert r32.losses[-1] == pytest.approx(r64.losses[-1], rel=1e-3)
    # the fast float32 loss equals the reference definition
    assert r32.losses[-1] == pytest.approx(
        beta_divergence(V.astype(np.float32), r32.W @ r32.H, beta), rel=1e-5
    )


# --------------------------------------------------------------------------------------------
# fixed columns, nonnegativity, degenerate data, dtypes, reproducibility
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fixed", [[0, 3], np.array([True, False, False, True]), True])
@pytest.mark.parametrize("beta", [0.0, 1.0, 2.0])
def test_fixed_columns_bit_identical(fixed, beta):
    V = data(seed=41).astype(np.float32)
    W0 = start(V, K=4, seed=42)[0]
    W0 = W0.astype(np.float32)
    res = fit_nmf(V, W=W0, beta=beta, fixed_W=fixed, l1_H=0.1, max_iter=15, tol=0)
    mask = np.zeros(4, bool)
    mask[fixed if fixed is not True else slice(None)] = True
    assert np.array_equal(res.W[:, mask], W0[:, mask])  # bit for bit
    assert res.W[:, mask].tobytes() == W0[:, mask].tobytes()
    free = ~mask
    if free.any():
        assert not np.allclose(res.W[:, free], W0[:, free])
        np.testing.assert_allclose(np.linalg.norm(res.W[:, free], axis=0), 1.0, rtol=1e-5)
    assert (res.W >= 0).all() and (res.H >= 0).all()


@pytest.mark.parametrize("beta", BETAS)
@pytest.mark.parametrize("init", ["nndsvda", "nndsvd", "random"])
def test_zeros_all_zero_v_and_zero_rows_are_finite(beta, init):
    for V in (np.zeros((6, 9), np.float32), data(6, 9, seed=51).astype(np.float32)):
        V[1] = 0
        V[:, 2] = 0
        res = fit_nmf(V, n_components=3, beta=beta, init=init, random_state=0, max_iter=25,
                      tol=1e-6, check_every=5, l1_H=0.01)  # fmt: skip
        for X in (res.W, res.H, res.losses):
            assert np.isfinite(X).all()
        assert (res.W >= 0).all() and (res.H >= 0).all()
        assert res.losses[-1] <= res.losses[0] * (1 + 1e-5) + 1e-6
    # all-zero V: the factors of a zero model
    res = fit_nmf(np.zeros((5, 4)), n_components=2, beta=beta, init=init, random_state=0)
    assert np.allclose(res.W @ res.H, 0) and res.losses[-1] == pytest.approx(0.0, abs=1e-3)


@pytest.mark.parametrize("beta", BETAS)
def test_fixed_w_with_zero_column_and_silent_frames(beta):
    V = data(8, 10, seed=52).astype(np.float32)
    V[:, :3] = 0
    W = np.abs(np.random.default_rng(0).standard_normal((8, 3))).astype(np.float32)
    W[:, 1] = 0
    res = fit_nmf(V, W=W, fixed_W=True, beta=beta, max_iter=30)
    assert np.isfinite(res.H).all() and (res.H >= 0).all() and np.isfinite(res.losses).all()


@pytest.mark.parametrize(
    ("dtype", "expected"),
    [(np.float32, np.float32), (np.float64, np.float64), (np.int64, np.float32),
     (np.float16, np.float32), (np.uint8, np.float32)],
)  # fmt: skip
def test_dtypes(dtype, expected):
    V = (data(seed=61, zeros=False) * 10).astype(dtype)
    res = fit_nmf(V, n_components=3, max_iter=5)
    assert res.W.dtype == expected and res.H.dtype == expected
    assert res.W.flags.c_contiguous and res.H.flags.c_contiguous
    assert res.losses.dtype == np.float64


@pytest.mark.parametrize("init", ["random", "nndsvda"])
def test_same_seed_same_result(init):
    # large enough for the randomised SVD path of NNDSVD
    V = data(120, 1800, seed=71, zeros=False).astype(np.float32)
    a = fit_nmf(V, n_components=4, init=init, random_state=5, max_iter=5)
    b = fit_nmf(V, n_components=4, init=init, random_state=5, max_iter=5)
    np.testing.assert_array_equal(a.W, b.W)
    np.testing.assert_array_equal(a.H, b.H)
    c = fit_nmf(V, n_components=4, init="random", random_state=6, max_iter=5)
    if init == "random":
        assert not np.array_equal(a.W, c.W)
    g = fit_nmf(V, n_components=4, init=init, random_state=np.random.default_rng(5), max_iter=5)
    np.testing.assert_array_equal(a.W, g.W)


def test_nndsvd_randomised_svd_close_to_exact():
    V = data(120, 1800, seed=72, zeros=False)
    rng = np.random.default_rng(0)
    _, s, _ = nmf_mod._randomized_svd(V, 4, rng)
    s_exact = np.linalg.svd(V, compute_uv=False)[:4]
    np.testing.assert_allclose(s, s_exact, rtol=1e-3)  # flat random spectrum: approximate
    W, H = nmf_mod._nndsvd(V, 4, rng, fill=False)
    assert (W >= 0).all() and (H >= 0).all() and (W == 0).any()
    W, H = nmf_mod._nndsvd(V, 4, rng, fill=True)
    assert (W > 0).all() and (H > 0).all()


def test_default_init_and_h_init_for_given_w():
    V = data(30, 40, seed=81, zeros=False).astype(np.float32)
    res = fit_nmf(V, n_components=4, max_iter=0)
    assert res.n_iter == 0 and res.losses.shape == (1,)
    np.testing.assert_allclose(np.linalg.norm(res.W, axis=0), 1, rtol=1e-5)  # w_norm="l2"
    # W given, H not: the projection rule beats a constant start
    W = fit_nmf(V, n_components=4, max_iter=50).W
    proj = fit_nmf(V, W=W, fixed_W=True, max_iter=0).losses[0]
    const = fit_nmf(V, W=W, H=np.full((4, 40), V.mean()), fixed_W=True, max_iter=0).losses[0]
    assert proj < const
    # H given, W not
    res = fit_nmf(V, H=np.ones((4, 40)), max_iter=3)
    assert res.W.shape == (30, 4) and np.isfinite(res.W).all()


def test_components_beyond_rank():
    V = data(4, 5, seed=82, zeros=False)
    res = fit_nmf(V, n_components=7, max_iter=20, random_state=0)
    assert res.W.shape == (4, 7) and np.isfinite(res.losses).all()


# --------------------------------------------------------------------------------------------
# convergence, callback, blocks
# --------------------------------------------------------------------------------------------


def test_convergence_and_callback():
    V = data(20, 30, seed=91, zeros=False)
    calls = []
    res = fit_nmf(V, n_components=3, tol=1e-3, max_iter=500, check_every=5,
                  callback=lambda n, loss: calls.append((n, loss)))  # fmt: skip
    assert res.converged and res.n_iter < 500 and res.n_iter % 5 == 0
    assert [n for n, _ in calls] == list(range(0, res.n_iter + 1, 5))
    np.testing.assert_array_equal([loss for _, loss in calls], res.losses)
    # scikit-learn's rule: the last decrease is small relative to the *initial* objective
    rel = (res.losses[-2] - res.losses[-1]) / res.losses[0]
    assert rel <= 1e-3 and (np.diff(res.losses)[:-1] < 0).all()
    assert ((res.losses[:-2] - res.losses[1:-1]) / res.losses[0] > 1e-3).all()  # not earlier
    # tol=0: exactly max_iter iterations, only the first and last objective computed
    res0 = fit_nmf(V, n_components=3, tol=0, max_iter=37)
    assert res0.n_iter == 37 and not res0.converged and res0.losses.shape == (2,)
    assert isinstance(res0, NMFResult)


@pytest.mark.parametrize("beta", [0.0, 1.0, 2.0])
@pytest.mark.parametrize("mode", ["learned", "semi", "fixed", "fixed_blocks"])
def test_compute_loss_false_gives_the_same_factors(monkeypatch, beta, mode):
    """Without the objective: the same updates (bit for bit), exactly max_iter of them, no
    losses, not converged; with a callback it is refused."""
    V = data(16, 40, seed=95, zeros=False).astype(np.float32)
    if mode == "fixed_blocks":
        monkeypatch.setattr(nmf_mod, "_H_BLOCK_BYTES", 2048)  # several frame blocks
    W = fit_nmf(V, n_components=4, max_iter=20, random_state=0).W
    kw = {
        "learned": dict(n_components=4, random_state=1),
        "semi": dict(W=W, fixed_W=[0, 1], random_state=1),
        "fixed": dict(W=W, fixed_W=True),
        "fixed_blocks": dict(W=W, fixed_W=True),
    }[mode]
    with_loss = fit_nmf(V, beta=beta, max_iter=7, tol=1e-12, l1_H=0.1, **kw)
    without = fit_nmf(V, beta=beta, max_iter=7, tol=1e-12, l1_H=0.1, compute_loss=False, **kw)
    assert with_loss.n_iter == without.n_iter == 7
    np.testing.assert_array_equal(without.H, with_loss.H)
    np.testing.assert_array_equal(without.W, with_loss.W)
    assert without.losses.shape == (0,) and not without.converged
    with pytest.raises(ParameterError, match="compute_loss"):
        fit_nmf(V, n_components=3, compute_loss=False, callback=lambda n, loss: None)
    with pytest.raises(ParameterError, match="compute_loss"):
        fit_nmf(V, n_components=3, compute_loss="no")


def test_h_only_blocks_converge_per_block(monkeypatch):
    V = data(16, 90, seed=92)
    W = fit_nmf(V, n_components=3, max_iter=30).W
    monkeypatch.setattr(nmf_mod, "_H_BLOCK_BYTES", 2048)  # several blocks
    assert nmf_mod._block_frames(dict(F=16, N=90, K=3, dtype=np.float64, beta=1.0)) < 90
    calls = []
    res = fit_nmf(V, W=W, fixed_W=True, tol=1e-5, max_iter=400, check_every=5, l1_H=0.1,
                  callback=lambda n, loss: calls.append((n, loss)))  # fmt: skip
    assert res.converged and res.n_iter < 400
    assert [n for n, _ in calls] == list(range(0, res.n_iter + 1, 5))
    assert (np.diff(res.losses) <= 0).all()
    assert res.losses[-1] == pytest.approx(objective(V, W, res.H, 1.0, l1_H=0.1), rel=1e-9)
    monkeypatch.setattr(nmf_mod, "_H_BLOCK_BYTES", 1 << 30)  # one block: same answer
    one = fit_nmf(V, W=W, fixed_W=True, tol=0, max_iter=50)
    monkeypatch.setattr(nmf_mod, "_H_BLOCK_BYTES", 2048)
    many = fit_nmf(V, W=W, fixed_W=True, tol=0, max_iter=50)
    np.testing.assert_allclose(many.H, one.H, rtol=1e-10)
    assert many.losses[-1] == pytest.approx(one.losses[-1], rel=1e-12)


def test_inputs_not_modified():
    V = data(seed=93)
    W0, H0 = start(V, K=3)
    Vc, Wc, Hc = V.copy(), W0.copy(), H0.copy()
    fit_nmf(V, W=W0, H=H0, max_iter=5)
    for a, b in ((V, Vc), (W0, Wc), (H0, Hc)):
        np.testing.assert_array_equal(a, b)


# --------------------------------------------------------------------------------------------
# parameter errors
# --------------------------------------------------------------------------------------------

V_OK = np.ones((4, 5))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(V=-V_OK, n_components=2), "V must be non-negative"),
        (dict(V=np.full((4, 5), np.nan), n_components=2), "NaN or infinite"),
        (dict(V=np.full((4, 5), np.inf), n_components=2), "NaN or infinite"),
        (dict(V=np.ones(5), n_components=2), "V must be 2-D"),
        (dict(V=np.ones((0, 5)), n_components=2), "must not be empty"),
        (dict(V=np.array([["a"]]), n_components=1), "real numeric"),
        (dict(V=V_OK), "n_components is required"),
        (dict(V=V_OK, n_components=0), "n_components must be >= 1"),
        (dict(V=V_OK, n_components=-3), "n_components must be >= 1"),
        (dict(V=V_OK, n_components=2.5), "n_components must be an integer"),
        (dict(V=V_OK, n_components=10**9), r"W and H would need .* over the limit"),
        (dict(V=V_OK, n_components=2, init="svd"), "unknown init 'svd'"),
        (dict(V=V_OK, n_components=2, init="custom"), "init='custom' needs W"),
        (dict(V=V_OK, W=np.ones((4, 2)), init="nndsvda"), "computes both W and H"),
        (dict(V=V_OK, n_components=2, beta="hellinger"), "unknown beta"),
        (dict(V=V_OK, n_components=2, beta=float("nan")), "beta must be a finite number"),
        (dict(V=V_OK, n_components=2, beta=None), "beta must be a real number"),
        (dict(V=V_OK, W=np.ones((3, 2))), "W must have 4 rows"),
        (dict(V=V_OK, H=np.ones((2, 6))), "H must have 5 columns"),
        (dict(V=V_OK, W=np.ones((4, 2)), H=np.ones((3, 5))), "inconsistent number of comp"),
        (dict(V=V_OK, W=np.ones((4, 2)), n_components=3), "inconsistent number of comp"),
        (dict(V=V_OK, W=-np.ones((4, 2))), "W must be non-negative"),
        (dict(V=V_OK, H=np.full((2, 5), np.nan)), "H contains NaN"),
        (dict(V=V_OK, n_components=2, fixed_W=True), "fixed_W needs the fixed bases"),
        (dict(V=V_OK, W=np.ones((4, 2)), fixed_W=[True]), r"mask must have shape \(2,\)"),
        (dict(V=V_OK, W=np.ones((4, 2)), fixed_W=[2]), r"indices must be in \[0, 1\]"),
        (dict(V=V_OK, W=np.ones((4, 2)), fixed_W=[-1]), r"indices must be in \[0, 1\]"),
        (dict(V=V_OK, W=np.ones((4, 2)), fixed_W=[0.5]), "integer column indices"),
        (dict(V=V_OK, W=np.ones((4, 2)), fixed_W="all"), "fixed_W must be True, False"),
        (dict(V=V_OK, n_components=2, update_H=False), "update_H=False needs"),
        (dict(V=V_OK, n_components=2, update_H="no"), "update_H must be True or False"),
        (dict(V=V_OK, n_components=2, l1_H=-1), "l1_H must be >= 0"),
        (dict(V=V_OK, n_components=2, l2_W=float("inf")), "l2_W must be >= 0"),
        (dict(V=V_OK, n_components=2, l1_W=0.1), "need w_norm=None"),
        (dict(V=V_OK, n_components=2, w_norm="max"), "w_norm must be"),
        (dict(V=V_OK, n_components=2, max_iter=-1), "max_iter must be >= 0"),
        (dict(V=V_OK, n_components=2, tol=-1e-3), "tol must be >= 0"),
        (dict(V=V_OK, n_components=2, check_every=0), "check_every must be >= 1"),
        (dict(V=V_OK, n_components=2, random_state="x"), "random_state must be"),
        (dict(V=V_OK, n_components=2, callback=3), "callback must be callable"),
    ],
)
def test_bad_arguments_raise_parameter_error(kwargs, match):
    kwargs = dict(kwargs)
    V = kwargs.pop("V")
    with pytest.raises(ParameterError, match=match) as info:
        fit_nmf(V, **kwargs)
    assert "\n" not in str(info.value)


def test_w_penalty_allowed_when_all_columns_fixed():
    res = fit_nmf(V_OK, W=np.ones((4, 2)), fixed_W=True, l1_W=0.5, max_iter=3)
    assert res.losses[-1] >= 0.5 * 8 - 1e-6


# --------------------------------------------------------------------------------------------
# property-based
# --------------------------------------------------------------------------------------------


@st.composite
def problems(draw):
    F = draw(st.integers(1, 9))
    N = draw(st.integers(1, 9))
    K = draw(st.integers(1, 4))
    V = draw(
        hnp.arrays(np.float64, (F, N),
                   elements=st.one_of(st.just(0.0), st.floats(1e-3, 1e3, allow_nan=False)))
    )  # fmt: skip
    beta = draw(st.sampled_from(BETAS))
    kw = draw(
        st.fixed_dictionaries(
            {},
            optional={
                "l1_H": st.floats(0, 2),
                "l2_H": st.floats(0, 2),
                "w_norm": st.sampled_from(["l2", "l1", None]),
                "init": st.sampled_from(["random", "nndsvda", "nndsvd"]),
            },
        )
    )
    return V, K, beta, kw


@settings(max_examples=40, deadline=None)
@given(problems())
def test_property_finite_nonnegative_monotone(problem):
    V, K, beta, kw = problem
    res, seen = record(V=V, n_components=K, beta=beta, max_iter=15, random_state=0, **kw)
    losses = np.array([loss for _, loss in seen])
    assert res.W.shape == (V.shape[0], K) and res.H.shape == (K, V.shape[1])
    for X in (res.W, res.H, losses):
        assert np.isfinite(X).all()
    assert (res.W >= 0).all() and (res.H >= 0).all()
    # rounding: relative to the current value, or to the data's scale when the fit is exact
    scale = losses[0] + np.sum(V ** max(beta, 1.0)) + V.size
    assert np.all(np.diff(losses) <= 1e-9 * losses[:-1] + 1e-13 * scale)


@settings(max_examples=25, deadline=None)
@given(problems(), st.integers(0, 3))
def test_property_fixed_columns_and_float32(problem, n_fixed):
    V, K, beta, kw = problem
    kw.pop("init", None)
    rng = np.random.default_rng(0)
    W = rng.random((V.shape[0], K)).astype(np.float32)
    fixed = list(range(min(n_fixed, K)))
    res = fit_nmf(V.astype(np.float32), W=W, fixed_W=fixed, beta=beta, max_iter=10, **kw)
    assert res.W.dtype == np.float32 and res.H.dtype == np.float32
    assert np.array_equal(res.W[:, fixed], W[:, fixed])
    assert np.isfinite(res.W).all() and np.isfinite(res.H).all()
    assert np.isfinite(res.losses).all()


# --------------------------------------------------------------------------------------------
# hardening of the core (issue 10)
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("which", ["W", "H", "H fixed"])
def test_all_zero_custom_factor_refused(which):
    V = data(8, 10, seed=71, zeros=False)
    W0, H0 = start(V, K=3)
    kw: dict = {"W": W0, "H": H0}
    if which == "W":
        kw["W"] = np.zeros_like(W0)
    else:
        kw["H"] = np.zeros_like(H0)
        if which == "H fixed":
            kw["update_H"] = False
    with pytest.raises(ParameterError, match=r"^(W|H) is all zeros: .*cannot move from zero"):
        fit_nmf(V, **kw)
    # zero *columns* or rows are fine (a silent basis stays silent)
    W1 = W0.copy()
    W1[:, 0] = 0
    res = fit_nmf(V, W=W1, H=H0, max_iter=5)
    assert np.isfinite(res.H).all()


@pytest.mark.parametrize("beta", BETAS)
@pytest.mark.parametrize("w_norm", ["l2", "l1", None])
def test_update_h_false_keeps_h_exactly(beta, w_norm):
    V = data(9, 12, seed=72, zeros=False)
    W0, H0 = start(V, K=3, seed=73)
    H0 = H0 * 7.0  # not normalised in any sense
    res = fit_nmf(V, W=W0, H=H0, update_H=False, beta=beta, w_norm=w_norm, max_iter=40, tol=0,
                  check_every=1, callback=lambda n, loss: None)  # fmt: skip
    np.testing.assert_array_equal(res.H, H0)  # documented: H is kept as given
    assert (np.diff(res.losses) <= 1e-12 * res.losses[0]).all()
    assert res.losses[-1] == pytest.approx(objective(V, res.W, H0, beta), rel=1e-9)
    # the W updates are the plain ones (no normalisation): equal to the slow reference
    W_ref, _ = ref_fit(V, W0, H0, beta, 40, w_norm=None, update_H=False)
    np.testing.assert_allclose(res.W, W_ref, rtol=1e-8)


@pytest.mark.parametrize("beta", [2.0, 1.0, 0.5])
@pytest.mark.parametrize("fixed", [True, False])
def test_exact_factorisation_converges(beta, fixed):
    """scikit-learn's rule (decrease relative to the *initial* objective): a run whose loss
    goes to zero geometrically stops (the old rule, relative to the previous check, did not)."""
    rng = np.random.default_rng(74)
    W0, H0 = rng.random((20, 3)) + 0.1, rng.random((3, 40)) + 0.1
    V = W0 @ H0
    W = W0 if fixed else W0 * rng.uniform(0.5, 2.0, W0.shape)
    res = fit_nmf(V, W=W, H=H0 * 1.5 + 0.1, fixed_W=fixed, beta=beta, max_iter=3000, tol=1e-4)
    assert res.converged and res.n_iter < 3000
    assert res.losses[-1] <= 1e-3 * res.losses[0]
    assert (res.losses[-2] - res.losses[-1]) <= 1e-4 * res.losses[0]


@pytest.mark.parametrize("fixed", [True, False])
def test_float32_euclidean_loss_is_accurate_and_monotone(fixed):
    """The float32 beta=2 check loss is accumulated robustly: it never rises along a run (a
    noisy loss used to rise while the true loss fell) and equals the float64 loss of the
    iterate it reports."""
    rng = np.random.default_rng(75)
    F, N, K = 60, 400, 6
    W0, H0 = rng.gamma(1.0, 1.0, (F, K)), rng.gamma(0.5, 1.0, (K, N))
    V = (1e3 * W0 @ H0 * (1 + 1e-4 * rng.standard_normal((F, N)))).clip(0).astype(np.float32)
    W = (W0 * 1e3 if fixed else W0 * rng.uniform(0.5, 2.0, W0.shape)).astype(np.float32)
    seen: list[float] = []
    res = fit_nmf(V, W=W, fixed_W=fixed, beta=2, max_iter=300, tol=0, check_every=5,
                  callback=lambda n, loss: seen.append(loss))  # fmt: skip
    losses = np.asarray(seen)
    assert (np.diff(losses) <= 1e-9 * losses[0]).all()
    true_last = beta_divergence(V.astype(np.float64), res.W.astype(np.float64) @ res.H, 2)
    assert losses[-1] == pytest.approx(true_last, rel=1e-4, abs=1e-6 * losses[0])


@pytest.mark.parametrize("beta", BETAS)
@pytest.mark.parametrize("how", ["custom W", "fixed W", "nndsvda", "random"])
def test_silence_every_beta(beta, how):
    """All-zero V (a silent file): finite factors, a zero model, converged, for every beta."""
    V = np.zeros((7, 11), np.float32)
    W = np.random.default_rng(76).random((7, 3)).astype(np.float32) + 0.1
    kw: dict = {"n_components": 3, "random_state": 0}
    if how == "custom W":
        kw = {"W": W}
    elif how == "fixed W":
        kw = {"W": W, "fixed_W": True}
    else:
        kw["init"] = how
    res = fit_nmf(V, beta=beta, max_iter=30, l1_H=0.1, **kw)
    for X in (res.W, res.H, res.losses):
        assert np.isfinite(X).all()
    assert np.allclose(res.W @ res.H, 0, atol=1e-5) and res.converged
    assert (np.diff(res.losses) <= 1e-6).all()


@pytest.mark.parametrize("beta", BETAS)
def test_reference_mu_objective_never_increases_and_matches(beta):
    """The slow reference MU is itself monotone, and fit_nmf reports its objective at every
    iteration (so the stopping rule sees the true objective)."""
    V = data(10, 14, seed=77)
    W0, H0 = start(V, K=3, seed=78)
    ref = [objective(V, *ref_fit(V, W0, H0, beta, n, l1_H=0.05), beta, l1_H=0.05)
           for n in range(12)]  # fmt: skip
    assert (np.diff(ref) <= 1e-12 * ref[0]).all()
    _, seen = record(V=V, W=W0, H=H0, beta=beta, l1_H=0.05, max_iter=11)
    np.testing.assert_allclose([loss for _, loss in seen], ref, rtol=1e-7)


def test_no_nan_or_inf_leaves_the_core_at_extreme_levels():
    V = data(8, 10, seed=79, zeros=False).astype(np.float32)
    for scale in (1e-30, 1e30, np.finfo(np.float32).max / 1e3):
        for beta in BETAS:
            res = fit_nmf(V * np.float32(scale), n_components=2, beta=beta, max_iter=15)
            for X in (res.W, res.H, res.losses):
                assert np.isfinite(X).all(), (scale, beta)


@pytest.mark.parametrize("beta", [3.0, 2.0, 1.5])
def test_small_scale_exact_fit_is_kept(beta):
    """Denominators are floored only against 0/0: data of small scale (where they fall below
    float32 eps) are updated like any other (an eps floor used to shrink H to 1e-73)."""
    V = np.array([[0.00390625]])
    res, seen = record(V=V, n_components=1, beta=beta, max_iter=15, random_state=0)
    assert res.W @ res.H == pytest.approx(V, rel=1e-6)
    assert max(loss for _, loss in seen) <= 1e-20


@pytest.mark.parametrize(("level", "beta"), [(1e12, 40.0), (1e12, -40.0), (1e30, 20.0)])
def test_a_divergence_beyond_floating_point_is_refused(level: float, beta: float) -> None:
    # loud data with a large |beta|: ZeroDivisionError / OverflowError from the rescaling
    V = np.random.default_rng(0).random((20, 30)).astype(np.float32) * np.float32(level)
    with pytest.raises(ParameterError, match="beyond floating point"):
        fit_nmf(V, n_components=3, beta=beta, max_iter=5, random_state=0)
    # the same data at a usual beta still works, at its own level
    r = fit_nmf(V, n_components=3, beta=3.0, max_iter=5, random_state=0)
    assert np.isfinite(r.W).all() and np.isfinite(r.H).all() and np.isfinite(r.losses).all()
