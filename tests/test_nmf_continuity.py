"""Tests of the temporal-continuity penalty of nmfsep.nmf (Virtanen 2007), small synthetic data."""

from __future__ import annotations

import numpy as np
import pytest
from test_nmf import EPS, data, record, ref_factor, start

import nmfsep.nmf as nmf_mod
from nmfsep.errors import ParameterError
from nmfsep.nmf import beta_divergence, fit_nmf

BETAS = [0.0, 0.5, 1.0, 1.5, 2.0, 3.0]


def weights(V, W, K, lam, beta, rows=None):
    """``lam_eff`` per row and the floor ``T tau_k^2`` (module docstring of nmfsep.nmf)."""
    F, T = V.shape
    mean = float(np.mean(V))
    lam_eff = np.full(K, lam * F * mean**beta / K)
    if rows is not None:
        lam_eff = np.where(np.isin(np.arange(K), rows), lam_eff, 0.0)
    floor = T * (EPS * F * mean / W.sum(axis=0)) ** 2
    return lam_eff, floor


def ref_penalty(H, lam_eff, floor):
    """Virtanen's cost, eq. 5, summed row by row: ``T sum_t (h_t - h_t-1)^2 / sum_t h_t^2``."""
    total = 0.0
    T = H.shape[1]
    for k in range(H.shape[0]):
        S = floor[k] + float(np.sum(H[k].astype(float) ** 2))
        if lam_eff[k] > 0 and S > 0:
            total += lam_eff[k] * T * float(np.sum(np.diff(H[k].astype(float)) ** 2)) / S
    return total


def objective(V, W, H, beta, lam, *, rows=None, W0=None, l1_H=0.0, l2_H=0.0):
    lam_eff, floor = weights(V, W if W0 is None else W0, H.shape[0], lam, beta, rows)
    return (
        beta_divergence(V, W @ H, beta)
        + l1_H * H.sum()
        + 0.5 * l2_H * (H**2).sum()
        + ref_penalty(H, lam_eff, floor)
    )


def ref_h_step(V, W, H, beta, lam, *, l1_H=0.0, l2_H=0.0):
    """One penalised H update in plain numpy, element by element (W fixed, float64).

    The divergence's MM terms ``p``, ``q`` as in ``test_nmf.ref_fit``; per row ``c = lam_eff T /
    S`` and ``rho = D / S`` at the current row; the even frames, then the odd ones with their
    updated neighbours, each with numerator ``q + 2 c (s + rho h)`` and L2-type term
    ``mu = l2 h + 2 c n h`` (``s``/``n``: sum / count of the neighbours).
    """
    V, W, H = (np.array(a, dtype=np.float64) for a in (V, W, H))
    lam_eff, floor = weights(V, W, H.shape[0], lam, beta)
    Vf = np.maximum(V, EPS) if beta <= 0 else V
    if beta == 2:
        q, p = W.T @ Vf, W.T @ (W @ H)
    else:
        WH = np.maximum(W @ H, EPS)
        q, p = W.T @ (Vf * WH ** (beta - 2)), W.T @ WH ** (beta - 1)
    K, T = H.shape
    out = H.copy()
    for k in range(K):
        S = floor[k] + np.sum(H[k] ** 2)
        c = lam_eff[k] * T / S
        rho = np.sum(np.diff(H[k]) ** 2) / S
        for j in [*range(0, T, 2), *range(1, T, 2)]:
            nb = [out[k, i] for i in (j - 1, j + 1) if 0 <= i < T]
            h = H[k, j]
            qq = q[k, j] + 2 * c * (sum(nb) + rho * h)
            mu = l2_H * h + 2 * c * len(nb) * h
            out[k, j] = h * ref_factor(qq, p[k, j], l1_H, mu, beta, True)
    return out


# --------------------------------------------------------------------------------------------
# the updates
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("pen", [dict(), dict(l1_H=0.2, l2_H=0.3)])
@pytest.mark.parametrize("beta", BETAS)
def test_one_update_matches_slow_reference(beta, pen):
    V = data(9, 13, seed=31)
    W0, H0 = start(V, K=3, seed=32)
    H = H0
    for _ in range(3):
        H = ref_h_step(V, W0, H, beta, 0.5, **pen)
    res = fit_nmf(V, W=W0, H=H0, fixed_W=True, beta=beta, continuity=0.5, max_iter=3, tol=0,
                  **pen)  # fmt: skip
    np.testing.assert_allclose(res.H, H, rtol=1e-9, atol=1e-13)


CONFIGS = {
    "W_and_H": dict(),
    "H_only": dict(fixed_W=True),
    "H_only_pen": dict(fixed_W=True, l1_H=0.2, l2_H=0.4),
    "partly_fixed": dict(fixed_W=[0, 2]),
    "some_rows": dict(continuity_rows=[1, 3], l1_H=0.1),
    "norm_l1_pen": dict(w_norm="l1", l2_H=0.3),
}


@pytest.mark.parametrize("lam", [0.05, 1.0, 20.0])
@pytest.mark.parametrize("config", list(CONFIGS))
@pytest.mark.parametrize("beta", [0.0, 0.5, 1.0, 2.0])
def test_objective_never_increases(beta, config, lam, monkeypatch):
    kw = dict(CONFIGS[config])
    # tiny frame blocks: continuity must still see every frame (it is routed past the blocks)
    monkeypatch.setattr(nmf_mod, "_H_BLOCK_BYTES", 1024)
    V = data(12, 40, seed=41)
    W0, H0 = start(V, K=4, seed=42)
    res, seen = record(V=V, W=W0, H=H0, beta=beta, continuity=lam, max_iter=50, **kw)
    losses = np.array([loss for _, loss in seen])
    assert [n for n, _ in seen] == list(range(51))
    steps = np.diff(losses)
    assert np.all(steps <= 1e-10 * losses[:-1]), (config, steps.max())
    assert losses[-1] < losses[0]
    # the reported value is the true objective (Virtanen's cost with the initial bases' floor)
    Wn = W0 / np.linalg.norm(W0, axis=0) if kw.get("w_norm", "l2") == "l2" else W0 / W0.sum(0)
    if "fixed_W" in kw:
        Wn = W0.copy()
        if kw["fixed_W"] is not True:
            learn = ~np.isin(np.arange(4), kw["fixed_W"])
            Wn[:, learn] = W0[:, learn] / np.linalg.norm(W0[:, learn], axis=0)
    want = objective(V, res.W, res.H, beta, lam, rows=kw.get("continuity_rows"), W0=Wn,
                     l1_H=kw.get("l1_H", 0.0), l2_H=kw.get("l2_H", 0.0))  # fmt: skip
    assert losses[-1] == pytest.approx(want, rel=1e-9)


@pytest.mark.parametrize("beta", [0.0, 0.5, 1.0, 2.0])
def test_float32_objective_never_increases(beta):
    V = data(12, 40, seed=43, dtype=np.float32)
    W0, H0 = start(V, K=4, seed=44)
    for kw in (dict(), dict(fixed_W=True, l1_H=0.5)):
        _, seen = record(V=V, W=W0, H=H0, beta=beta, continuity=2.0, max_iter=80, **kw)
        losses = np.array([loss for _, loss in seen])
        assert np.all(np.diff(losses) <= 1e-5 * losses[:-1]), kw


def roughness(H):
    """Virtanen's cost per row (without the weight), mean over rows."""
    return float(np.mean(H.shape[1] * np.sum(np.diff(H, axis=1) ** 2, 1) / np.sum(H**2, 1)))


@pytest.mark.parametrize("beta", [0.0, 1.0, 2.0])
def test_it_smooths_and_lambda_zero_is_the_old_path(beta):
    V = data(16, 60, seed=45)
    W0, H0 = start(V, K=4, seed=46)
    kw = dict(W=W0, H=H0, fixed_W=True, beta=beta, max_iter=100, tol=0)
    base = fit_nmf(V, **kw)
    r = [roughness(fit_nmf(V, continuity=lam, **kw).H) for lam in (0.01, 0.1, 1.0)]
    assert roughness(base.H) > r[0] > r[1] > r[2]
    for zero in (dict(continuity=0.0), dict(continuity=3.0, continuity_rows=[])):
        np.testing.assert_array_equal(fit_nmf(V, **kw, **zero).H, base.H)


def test_only_the_chosen_rows_are_smoothed():
    V = data(16, 60, seed=47)
    W0, H0 = start(V, K=4, seed=48)
    kw = dict(W=W0, H=H0, fixed_W=True, beta=1.0, max_iter=100, tol=0)
    base = fit_nmf(V, **kw).H
    mask = np.array([False, True, False, False])
    for rows in ([1], mask):
        H = fit_nmf(V, continuity=5.0, continuity_rows=rows, **kw).H
        assert roughness(H[1:2]) < 0.5 * roughness(base[1:2])


@pytest.mark.parametrize("beta", [0.0, 1.0, 2.0])
def test_same_meaning_at_any_level(beta):
    """lam is scaled by mean(V)**beta: a louder V gives the same H up to the level."""
    V = data(10, 30, seed=49, zeros=False)
    W0, H0 = start(V, K=3, seed=50)
    kw = dict(W=W0, fixed_W=True, beta=beta, continuity=1.0, max_iter=30, tol=0)
    a = fit_nmf(V, H=H0, **kw).H
    b = fit_nmf(V * 1024.0, H=H0 * 1024.0, **kw).H
    np.testing.assert_allclose(b / 1024.0, a, rtol=1e-7, atol=1e-12)
    # and at an extreme level, solved at unit peak (nmf._rescale_extreme)
    c = fit_nmf(V * 2.0**40, H=H0 * 2.0**40, **kw).H
    np.testing.assert_allclose(c / 2.0**40, a, rtol=1e-6, atol=1e-12)


# --------------------------------------------------------------------------------------------
# silence, single frames, float32
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("beta", BETAS)
@pytest.mark.parametrize(
    "how", ["zero V, fixed W", "zero V, learned", "silent frames", "one frame"]
)
def test_silence_every_beta(beta, how):
    rng = np.random.default_rng(51)
    W = rng.random((7, 3)).astype(np.float32) + 0.1
    V = np.zeros((7, 11), np.float32)
    kw: dict = {"W": W, "fixed_W": True}
    if how == "zero V, learned":
        kw = {"n_components": 3, "random_state": 0}
    elif how == "silent gap":
        V = data(7, 11, seed=52, dtype=np.float32)
        V[:, 3:7] = 0.0
    elif how == "one frame":
        V = data(7, 1, seed=53, dtype=np.float32)
    res = fit_nmf(V, beta=beta, max_iter=40, continuity=5.0, l1_H=0.1, **kw)
    assert res.H.dtype == np.float32
    for X in (res.W, res.H, res.losses):
        assert np.isfinite(X).all()
    assert (np.diff(res.losses) <= 1e-5 * res.losses[0] + 1e-6).all()
    if how.startswith("zero V"):
        assert np.allclose(res.W @ res.H, 0, atol=1e-5)


# --------------------------------------------------------------------------------------------
# parameter errors
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(continuity=-0.1), "continuity must be >= 0"),
        (dict(continuity=float("nan")), "continuity must be >= 0"),
        (dict(continuity=float("inf")), "continuity must be >= 0"),
        (dict(continuity="1"), "continuity must be a number"),
        (dict(continuity=True), "continuity must be a number"),
        (dict(continuity_rows=[2]), r"continuity_rows row indices must be in \[0, 1\]"),
        (dict(continuity_rows=[True]), r"continuity_rows mask must have shape \(2,\)"),
        (dict(continuity_rows="all"), "continuity_rows must be True, False"),
    ],
)
def test_bad_arguments_raise_parameter_error(kwargs, match):
    with pytest.raises(ParameterError, match=match) as info:
        fit_nmf(np.ones((4, 5)), n_components=2, **kwargs)
    assert "\n" not in str(info.value)
