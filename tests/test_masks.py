"""nmfsep.masks: Wiener and binary masks, applying masks to STFTs."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from nmfsep.errors import ParameterError
from nmfsep.masks import apply_masks, binary_masks, wiener_masks


def _parts(seed: int = 0, shape: tuple[int, ...] = (3, 17, 11)) -> np.ndarray:
    return np.random.default_rng(seed).random(shape).astype(np.float32)


@pytest.mark.parametrize("power", [0.5, 1.0, 2.0, 3.7])
def test_wiener_masks_definition_and_sum(power: float) -> None:
    P = _parts()
    M = wiener_masks(P, power=power)
    assert M.shape == P.shape and M.dtype == np.float32
    expected = P.astype(np.float64) ** power
    expected /= expected.sum(axis=0)
    np.testing.assert_allclose(M, expected, rtol=2e-5, atol=1e-6)
    np.testing.assert_allclose(M.sum(axis=0), 1.0, atol=2e-6)
    assert (M >= 0).all() and (M <= 1).all()


def test_p1_is_ratio_and_p2_is_wiener() -> None:
    P = np.array([[[1.0]], [[3.0]]], dtype=np.float32)
    np.testing.assert_allclose(wiener_masks(P, power=1)[:, 0, 0], [0.25, 0.75])
    np.testing.assert_allclose(wiener_masks(P, power=2)[:, 0, 0], [0.1, 0.9])
    np.testing.assert_allclose(wiener_masks(P)[:, 0, 0], [0.1, 0.9])  # default p = 2


def test_zero_bins_split_equally_and_never_nan() -> None:
    P = np.zeros((4, 5, 6), np.float32)
    P[1, 0, 0] = 2.0
    P[:, 1, 1] = 1e-40  # subnormal float32: below the default eps -> equal split
    M = wiener_masks(P)
    assert np.isfinite(M).all()
    np.testing.assert_allclose(M[:, 0, 0], [0, 1, 0, 0])
    np.testing.assert_allclose(M[:, 2:, 2:], 0.25)
    np.testing.assert_allclose(M[:, 1, 1], 0.25)
    np.testing.assert_allclose(M.sum(axis=0), 1.0, atol=1e-6)


def test_eps_threshold() -> None:
    P = np.array([[[1e-6, 0.5]], [[3e-6, 0.5]]], dtype=np.float32)
    M = wiener_masks(P, power=1, eps=1e-5)
    np.testing.assert_allclose(M[:, 0, 0], [0.5, 0.5])
    M = wiener_masks(P, power=1)
    np.testing.assert_allclose(M[:, 0, 0], [0.25, 0.75], rtol=1e-5)


def test_extreme_scales_do_not_overflow() -> None:
    big = np.array([[[3e38]], [[1e38]]], dtype=np.float32)
    tiny = np.array([[[3e-38]], [[1e-38]]], dtype=np.float32)
    for P in (big, tiny):
        M = wiener_masks(P, power=2.0)
        np.testing.assert_allclose(M[:, 0, 0], [0.9, 0.1], rtol=1e-5)
    M = wiener_masks(np.array([[[1.0]], [[1e-30]]], np.float32), power=50.0)
    np.testing.assert_allclose(M[:, 0, 0], [1.0, 0.0])


def test_dtypes() -> None:
    P = _parts()
    assert wiener_masks(P.astype(np.float64)).dtype == np.float64
    assert wiener_masks(P.astype(np.float16)).dtype == np.float32
    assert wiener_masks((P * 10).astype(np.int32)).dtype == np.float32
    assert wiener_masks(P[:1]).min() == 1.0  # one source: mask 1 everywhere
    assert wiener_masks(np.zeros((2, 0, 3), np.float32)).shape == (2, 0, 3)


@pytest.mark.parametrize("power", [0, -1, float("nan"), float("inf"), "two", None])
def test_power_validation(power: object) -> None:
    with pytest.raises(ParameterError, match="power"):
        wiener_masks(_parts(), power=power)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "parts",
    [
        np.array([1.0, 2.0], np.float32),
        -_parts(),
        np.full((2, 3, 3), np.nan, np.float32),
        np.full((2, 3, 3), np.inf, np.float32),
        np.ones((2, 3, 3), np.complex64),
        np.zeros((0, 3, 3), np.float32),
    ],
)
def test_parts_validation(parts: np.ndarray) -> None:
    with pytest.raises(ParameterError):
        wiener_masks(parts)
    with pytest.raises(ParameterError):
        binary_masks(parts)


def test_binary_masks_ties_to_lowest_index() -> None:
    P = np.array([[[1.0, 2.0, 0.0]], [[1.0, 3.0, 0.0]], [[0.5, 3.0, 0.0]]], np.float32)
    M = binary_masks(P)
    assert M.dtype == np.float32
    np.testing.assert_array_equal(M[:, 0, :], [[1, 0, 1], [0, 1, 0], [0, 0, 0]])
    np.testing.assert_array_equal(M.sum(axis=0), 1.0)


def test_apply_masks_multichannel_and_sum_back() -> None:
    rng = np.random.default_rng(1)
    X = (rng.standard_normal((2, 17, 11)) + 1j * rng.standard_normal((2, 17, 11))).astype(
        np.complex64
    )
    M = wiener_masks(_parts())
    S = apply_masks(M, X)
    assert S.shape == (3, 2, 17, 11) and S.dtype == np.complex64
    np.testing.assert_allclose(S[1, 0], M[1] * X[0], rtol=1e-6)
    np.testing.assert_allclose(S.sum(axis=0), X, rtol=1e-5, atol=1e-5)
    # per-channel masks and a mono spectrogram
    per_channel = np.broadcast_to(M[:, None], (3, 2, 17, 11))
    np.testing.assert_allclose(apply_masks(per_channel, X), S)
    assert apply_masks(M, X[0]).shape == (3, 17, 11)
    assert apply_masks(M.astype(np.float64), X.astype(np.complex128)).dtype == np.complex128
    assert apply_masks(M, np.abs(X)).dtype == np.float32


def test_apply_masks_errors() -> None:
    X = np.ones((2, 17, 11), np.complex64)
    with pytest.raises(ParameterError, match="do not fit"):
        apply_masks(np.ones((2, 16, 11), np.float32), X)
    with pytest.raises(ParameterError):
        apply_masks(np.ones((2, 17, 11), np.complex64), X)
    with pytest.raises(ParameterError):
        apply_masks(np.ones((2, 17, 11), np.float32), np.ones(5, np.complex64))


@settings(max_examples=50, deadline=None)
@given(
    hnp.arrays(
        np.float32,
        st.tuples(st.integers(1, 4), st.integers(1, 6), st.integers(1, 6)),
        elements=st.floats(0, float(np.finfo(np.float32).max), width=32),
    ),
    st.floats(0.1, 8.0),
)
def test_fuzz_masks_always_sum_to_one(P: np.ndarray, power: float) -> None:
    M = wiener_masks(P, power=power)
    assert np.isfinite(M).all() and (M >= 0).all() and (M <= 1).all()
    np.testing.assert_allclose(M.sum(axis=0), 1.0, atol=1e-5)
