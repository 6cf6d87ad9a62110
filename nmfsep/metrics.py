"""Separation quality metrics: SI-SDR, SNR, BSS-eval SDR/SIR/SAR, improvement over the mixture,
permutation solving, and oracle Wiener-mask estimates.

Conventions
-----------
* Signals are numpy arrays, shape ``(n_samples,)`` for one source or ``(n_sources, n_samples)``;
  everything is computed in float64.
* Values in dB. Degenerate cases never raise and are documented per function:
  ``+inf`` for an exact estimate (zero error), ``-inf`` for a silent estimate of an audible
  reference, ``nan`` when the metric is undefined (silent reference).
* Lengths: references, estimates and mixture may differ by at most 1 % of the longest signal
  (e.g. codec padding); they are then trimmed to the shortest. A larger difference is a
  :class:`~nmfsep.errors.ParameterError`.
* BSS-eval (:func:`bss_eval`) uses fast_bss_eval (optional extra ``eval``), with the usual
  512-tap distortion filter of ``bss_eval_sources``.
"""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from nmfsep.errors import NmfsepError, ParameterError
from nmfsep.spectral import STFTConfig

EVAL_EXTRA_MESSAGE = "BSS-eval metrics need the 'eval' extra: pip install 'nmfsep[eval]'"
LENGTH_TOLERANCE = 0.01
"""Largest relative length difference that is trimmed instead of refused."""

_SILENT_NORM = 1e-10  # L2 norm below which a signal counts as silent


# --------------------------------------------------------------------------------------------
# input handling


#: Taps of BSS-eval's distortion filter (``bss_eval_sources``' 512): a signal must be longer.
FILTER_LENGTH = 512


def _as_2d(x: Any, name: str) -> np.ndarray:
    arr = np.asarray(x)
    if not np.issubdtype(arr.dtype, np.number) or np.iscomplexobj(arr):
        raise ParameterError(f"{name} must hold real numbers, got dtype {arr.dtype}")
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2 or arr.shape[0] < 1 or arr.shape[1] < 1:
        raise ParameterError(
            f"{name} must have shape (n_samples,) or (n_sources, n_samples), got {arr.shape}"
        )
    arr = arr.astype(np.float64)
    if not np.all(np.isfinite(arr)):
        raise ParameterError(f"{name} holds NaN or infinite values")
    return arr


def _common_length(*arrays: tuple[str, np.ndarray]) -> int:
    lengths = [a.shape[-1] for _, a in arrays]
    shortest, longest = min(lengths), max(lengths)
    if longest - shortest > LENGTH_TOLERANCE * longest:
        desc = ", ".join(f"{name} {a.shape[-1]}" for name, a in arrays)
        raise ParameterError(
            f"signal lengths differ by more than {LENGTH_TOLERANCE:.0%} ({desc} samples)"
        )
    return shortest


def _prepare(references: Any, estimates: Any) -> tuple[np.ndarray, np.ndarray]:
    ref = _as_2d(references, "references")
    est = _as_2d(estimates, "estimates")
    n = _common_length(("references", ref), ("estimates", est))
    return ref[:, :n], est[:, :n]


def _ratio_db(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """10 log10(num / den) with 0/0 -> nan, x/0 -> inf, 0/x -> -inf, no warnings."""
    num = np.asarray(num, dtype=np.float64)
    den = np.asarray(den, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = 10.0 * np.log10(num / den)
    return np.asarray(out, dtype=np.float64)


def _scalar_or_array(values: np.ndarray, one_d: bool) -> float | np.ndarray:
    return float(values[0]) if one_d else values


# --------------------------------------------------------------------------------------------
# simple metrics


def si_sdr(reference: Any, estimate: Any) -> float | np.ndarray:
    """Scale-invariant signal-to-distortion ratio (Le Roux et al., 2019), in dB.

    ``SI-SDR = 10 log10(||a s||^2 / ||a s - s_hat||^2)`` with ``a = <s_hat, s> / ||s||^2``
    (no mean removal).

    Parameters
    ----------
    reference : np.ndarray, shape (n_samples,) or (n_sources, n_samples)
    estimate : np.ndarray, same shape as ``reference`` (lengths within 1 %, trimmed)

    Returns
    -------
    float or np.ndarray, shape (n_sources,)
        A float for 1-D inputs. ``+inf`` when the estimate is an exact scaled copy,
        ``-inf`` when the estimate is silent (or orthogonal to the reference),
        ``nan`` when the reference is silent.
    """
    one_d = np.ndim(reference) == 1 and np.ndim(estimate) == 1
    ref, est = _prepare(reference, estimate)
    if ref.shape[0] != est.shape[0]:
        raise ParameterError(
            f"got {ref.shape[0]} references but {est.shape[0]} estimates; pair them one to one"
        )
    ref_energy = np.sum(ref**2, axis=1)
    dot = np.sum(ref * est, axis=1)
    silent_ref = np.sqrt(ref_energy) < _SILENT_NORM
    alpha = np.divide(dot, ref_energy, out=np.zeros_like(dot), where=~silent_ref)
    target = alpha[:, None] * ref
    noise = est - target
    out = _ratio_db(np.sum(target**2, axis=1), np.sum(noise**2, axis=1))
    silent_est = np.sqrt(np.sum(est**2, axis=1)) < _SILENT_NORM
    out[silent_est] = -np.inf
    out[silent_ref] = np.nan
    return _scalar_or_array(out, one_d)


def snr(reference: Any, estimate: Any) -> float | np.ndarray:
    """Plain signal-to-noise ratio ``10 log10(||s||^2 / ||s - s_hat||^2)``, in dB.

    Parameters
    ----------
    reference : np.ndarray, shape (n_samples,) or (n_sources, n_samples)
    estimate : np.ndarray, same shape as ``reference`` (lengths within 1 %, trimmed)

    Returns
    -------
    float or np.ndarray, shape (n_sources,)
        ``+inf`` for an exact estimate, ``-inf`` for a silent reference with a non-silent
        estimate, ``nan`` when both are silent.
    """
    one_d = np.ndim(reference) == 1 and np.ndim(estimate) == 1
    ref, est = _prepare(reference, estimate)
    if ref.shape[0] != est.shape[0]:
        raise ParameterError(
            f"got {ref.shape[0]} references but {est.shape[0]} estimates; pair them one to one"
        )
    out = _ratio_db(np.sum(ref**2, axis=1), np.sum((ref - est) ** 2, axis=1))
    return _scalar_or_array(out, one_d)


# --------------------------------------------------------------------------------------------
# BSS-eval


def _fast_bss_eval() -> Any:
    try:
        import fast_bss_eval
    except ImportError:
        raise NmfsepError(EVAL_EXTRA_MESSAGE) from None
    return fast_bss_eval


def _assignment(score: np.ndarray) -> np.ndarray:
    """Estimate index for each reference (row) maximising the summed score; non-finite safe."""
    from scipy.optimize import linear_sum_assignment

    finite = np.nan_to_num(score, nan=-1e6, posinf=1e6, neginf=-1e6)
    finite = np.clip(finite, -1e6, 1e6)
    rows, cols = linear_sum_assignment(finite, maximize=True)
    perm = np.empty(score.shape[0], dtype=np.int64)
    perm[rows] = cols
    return perm


#: Longest stretch scored in one piece by BSS-eval (samples). fast_bss_eval's correlations use
#: FFTs of about twice the signal's length for every signal: a 20-minute file would need
#: gigabytes. Longer signals are scored in equal segments of at most this length, each with its
#: own distortion filter (as BSS-eval v4 / museval do with windows), and the segments combined
#: exactly by energy: the projected share of an estimate's energy is the energy-weighted mean
#: of the segments' shares, so the result is one SDR/SIR/SAR for the whole signal. (Like every
#: windowed BSS-eval, a filter per segment forgives gain changes between segments that one
#: filter for the whole signal would count as distortion.)
BSS_SEGMENT = 1 << 19


def _segmented_cosines(
    fbe: Any, r: np.ndarray, e: np.ndarray, filter_length: int
) -> tuple[np.ndarray, np.ndarray]:
    """Pairwise squared cosines (SDR and SAR coherences), shape (n_ref, n_est), computed on
    segments of at most :data:`BSS_SEGMENT` samples and combined by each estimate's energy."""
    n = r.shape[1]
    n_seg = max(1, -(-n // BSS_SEGMENT))
    edges = np.linspace(0, n, n_seg + 1).astype(np.int64)
    num_sdr = np.zeros((r.shape[0], e.shape[0]))
    num_sar = np.zeros((r.shape[0], e.shape[0]))
    total = np.zeros(e.shape[0])
    for a, b in itertools.pairwise(edges):
        es = e[:, a:b]
        energy = np.einsum("ij,ij->i", es, es, dtype=np.float64)
        # references silent in this segment project nothing there (their rows get no share)
        act = np.einsum("ij,ij->i", r[:, a:b], r[:, a:b], dtype=np.float64) > 0.0
        if n_seg == 1:
            act[:] = True  # one piece: fast_bss_eval's own handling, as before
        total += energy
        if not energy.any() or not act.any():
            continue
        rs = r[act, a:b]
        with np.errstate(divide="ignore", invalid="ignore"):
            try:
                c_sdr, c_sar = fbe.numpy.square_cosine_metrics(
                    rs, es, filter_length=filter_length, pairwise=True
                )
            except np.linalg.LinAlgError:
                # rank-deficient references (e.g. pure tones): regularise the normal equations
                c_sdr, c_sar = fbe.numpy.square_cosine_metrics(
                    rs, es, filter_length=filter_length, pairwise=True, load_diag=1e-9
                )
        c_sdr = np.nan_to_num(np.clip(np.asarray(c_sdr, dtype=np.float64), 0.0, 1.0))
        c_sar = np.nan_to_num(np.clip(np.asarray(c_sar, dtype=np.float64), 0.0, 1.0))
        num_sdr[act] += c_sdr * energy[None, :]
        num_sar[act] += c_sar * energy[None, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        coh_sdr = np.clip(num_sdr / total[None, :], 0.0, 1.0)
        coh_sar = np.clip(num_sar / total[None, :], 0.0, 1.0)
    return coh_sdr, coh_sar


def _pairwise_bss(
    ref: np.ndarray, est: np.ndarray, filter_length: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pairwise (n_ref, n_est) SDR, SIR, SAR in dB; silent references give nan rows."""
    fbe = _fast_bss_eval()
    n_ref, n_est = ref.shape[0], est.shape[0]
    sdr = np.full((n_ref, n_est), np.nan)
    sir = np.full((n_ref, n_est), np.nan)
    sar = np.full((n_ref, n_est), np.nan)
    ref_norm = np.linalg.norm(ref, axis=1)
    est_norm = np.linalg.norm(est, axis=1)
    active = ref_norm >= _SILENT_NORM
    audible = est_norm >= _SILENT_NORM
    if not active.any():
        return sdr, sir, sar
    # every metric is invariant to the scale of each signal: normalise, so that quiet signals
    # are well conditioned (fast_bss_eval only rescales norms above 1e-6)
    r = ref[active] / ref_norm[active, None]
    e = np.divide(est, est_norm[:, None], out=np.zeros_like(est), where=audible[:, None])
    coh_sdr, coh_sar = _segmented_cosines(fbe, r, e, filter_length)
    with np.errstate(divide="ignore", invalid="ignore"):
        coh_sir = np.clip(coh_sdr / coh_sar, 0.0, 1.0)
    a_sdr = _ratio_db(coh_sdr, 1.0 - coh_sdr)
    a_sar = _ratio_db(coh_sar, 1.0 - coh_sar)
    a_sir = _ratio_db(coh_sir, 1.0 - coh_sir)
    if int(active.sum()) == 1:
        a_sir = np.full_like(a_sdr, np.inf)  # no interfering reference: SIR undefined -> inf
    # silent estimates: nothing of any reference is recovered
    a_sdr[:, ~audible] = -np.inf
    a_sir[:, ~audible] = np.nan
    a_sar[:, ~audible] = -np.inf
    sdr[active], sir[active], sar[active] = a_sdr, a_sir, a_sar
    return sdr, sir, sar


def bss_eval(
    references: Any,
    estimates: Any,
    *,
    filter_length: int = FILTER_LENGTH,
    compute_permutation: bool = False,
) -> dict[str, np.ndarray]:
    """BSS-eval SDR, SIR and SAR (``bss_eval_sources`` definitions) through fast_bss_eval.

    Parameters
    ----------
    references : np.ndarray, shape (n_sources, n_samples) or (n_samples,)
        True sources (1-D means one source).
    estimates : np.ndarray, shape (n_estimates, n_samples) or (n_samples,)
        Estimated sources. Without ``compute_permutation``, ``n_estimates == n_sources`` and
        estimate ``i`` is scored against reference ``i``; with it, ``n_estimates >= n_sources``.
    filter_length : int
        Length in taps of the allowed distortion filter (512 as in ``bss_eval_sources``;
        1 gives scale-invariant metrics). Signals must be at least this long.
    compute_permutation : bool
        Match estimates to references maximising the mean SIR (the BSS-eval rule; the mean
        SDR when there is a single reference).

    Returns
    -------
    dict
        ``"sdr"``, ``"sir"``, ``"sar"``: float64 arrays (n_sources,), metrics of reference ``i``
        against estimate ``perm[i]``; ``"perm"``: int64 array (n_sources,).
        Degenerate values: with a single (non-silent) reference the SIR is ``+inf`` (no
        interference is possible) and SDR = SAR; a silent reference gives ``nan`` SDR/SIR/SAR
        and is left out of the interference subspace of the others; a silent estimate gives
        SDR = SAR = ``-inf`` and SIR ``nan``; an exact estimate gives ``+inf``.

    Raises
    ------
    NmfsepError
        fast_bss_eval is not installed (the message names ``pip install 'nmfsep[eval]'``).
    ParameterError
        Bad shapes, counts, lengths (see module docstring) or ``filter_length``.
    """
    ref, est = _prepare(references, estimates)
    if isinstance(filter_length, bool) or int(filter_length) != filter_length or filter_length < 1:
        raise ParameterError(f"filter_length must be a positive integer, got {filter_length!r}")
    filter_length = int(filter_length)
    n_ref, n_est = ref.shape[0], est.shape[0]
    if compute_permutation and n_est < n_ref:
        raise ParameterError(f"need at least {n_ref} estimates for {n_ref} references, got {n_est}")
    if not compute_permutation and n_est != n_ref:
        raise ParameterError(
            f"got {n_ref} references but {n_est} estimates; pass compute_permutation=True "
            "to match them"
        )
    if ref.shape[1] < filter_length:
        raise ParameterError(
            f"signals of {ref.shape[1]} samples are shorter than the {filter_length}-tap "
            "distortion filter"
        )
    sdr, sir, sar = _pairwise_bss(ref, est, filter_length)
    if compute_permutation:
        n_active = int((np.linalg.norm(ref, axis=1) >= _SILENT_NORM).sum())
        crit = sir if n_active > 1 else sdr
        perm = _assignment(crit)
    else:
        perm = np.arange(n_ref, dtype=np.int64)
    idx = np.arange(n_ref)
    return {
        "sdr": sdr[idx, perm],
        "sir": sir[idx, perm],
        "sar": sar[idx, perm],
        "perm": perm,
    }


# --------------------------------------------------------------------------------------------
# full evaluation


@dataclass
class SourceScore:
    """Scores of one reference source against its matched estimate (dB).

    ``sdr``/``sir``/``sar`` are ``None`` when computed without BSS-eval (``bss=False``);
    the ``mixture_*`` and ``*_improvement`` fields are ``None`` without a mixture.
    Improvement = metric(estimate) - metric(mixture as the estimate).
    """

    name: str
    reference_index: int
    estimate_index: int
    si_sdr: float
    sdr: float | None = None
    sir: float | None = None
    sar: float | None = None
    mixture_si_sdr: float | None = None
    mixture_sdr: float | None = None
    si_sdr_improvement: float | None = None
    sdr_improvement: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (floats may be ``inf``/``nan`` as documented in :mod:`nmfsep.metrics`)."""
        return asdict(self)


def _improvement(value: float, base: float) -> float:
    with np.errstate(invalid="ignore"):
        return float(np.float64(value) - np.float64(base))


def evaluate_separation(
    references: Any,
    estimates: Any,
    *,
    mixture: Any = None,
    names: list[str] | tuple[str, ...] | None = None,
    solve_permutation: bool = True,
    bss: bool = True,
    filter_length: int = FILTER_LENGTH,
) -> list[SourceScore]:
    """Score estimates against references: SI-SDR, BSS-eval SDR/SIR/SAR, improvements.

    Parameters
    ----------
    references : np.ndarray, shape (n_sources, n_samples) or (n_samples,)
    estimates : np.ndarray, shape (n_estimates, n_samples) or (n_samples,)
        With ``solve_permutation``, ``n_estimates >= n_sources`` (extra estimates stay
        unmatched); otherwise ``n_estimates == n_sources`` and estimate ``i`` goes with
        reference ``i``.
    mixture : np.ndarray, shape (n_samples,) or (1, n_samples), optional
        The unprocessed mixture; adds ``mixture_sdr``/``mixture_si_sdr`` (the mixture used as
        the estimate of each reference) and the improvements.
    names : sequence of str, optional
        One name per reference (default ``source1``, ``source2``, ...).
    solve_permutation : bool
        Match estimates to references maximising the mean SI-SDR
        (:func:`scipy.optimize.linear_sum_assignment`).
    bss : bool
        Compute BSS-eval SDR/SIR/SAR (needs the ``eval`` extra); ``False`` gives SI-SDR only.
    filter_length : int
        BSS-eval distortion filter length (taps).

    Returns
    -------
    list of SourceScore
        One per reference, in reference order.

    Raises
    ------
    ParameterError
        Bad shapes, counts, names or lengths.
    NmfsepError
        ``bss=True`` without fast_bss_eval installed.
    """
    ref = _as_2d(references, "references")
    est = _as_2d(estimates, "estimates")
    named = [("references", ref), ("estimates", est)]
    mix = None
    if mixture is not None:
        mix = _as_2d(mixture, "mixture")
        if mix.shape[0] != 1:
            raise ParameterError(f"mixture must be a single signal, got shape {mix.shape}")
        named.append(("mixture", mix))
    n = _common_length(*named)
    ref, est = ref[:, :n], est[:, :n]
    n_ref, n_est = ref.shape[0], est.shape[0]
    if names is None:
        names = [f"source{i + 1}" for i in range(n_ref)]
    names = [str(x) for x in names]
    if len(names) != n_ref:
        raise ParameterError(f"got {len(names)} names for {n_ref} references")
    if solve_permutation and n_est < n_ref:
        raise ParameterError(f"need at least {n_ref} estimates for {n_ref} references, got {n_est}")
    if not solve_permutation and n_est != n_ref:
        raise ParameterError(
            f"got {n_ref} references but {n_est} estimates; solve the permutation to match them"
        )
    if solve_permutation:
        pair = np.array(
            [si_sdr(np.repeat(ref[i : i + 1], n_est, axis=0), est) for i in range(n_ref)]
        ).reshape(n_ref, n_est)
        perm = _assignment(pair)
    else:
        perm = np.arange(n_ref, dtype=np.int64)
    matched = est[perm]
    si = np.asarray(si_sdr(ref, matched)).reshape(n_ref)
    bss_res = bss_eval(ref, matched, filter_length=filter_length) if bss else None
    mix_si = mix_sdr = None
    if mix is not None:
        mix_rep = np.repeat(mix[:, :n], n_ref, axis=0)
        mix_si = np.asarray(si_sdr(ref, mix_rep)).reshape(n_ref)
        if bss:
            mix_sdr = bss_eval(ref, mix_rep, filter_length=filter_length)["sdr"]
    scores = []
    for i in range(n_ref):
        s = SourceScore(
            name=names[i],
            reference_index=i,
            estimate_index=int(perm[i]),
            si_sdr=float(si[i]),
        )
        if bss_res is not None:
            s.sdr = float(bss_res["sdr"][i])
            s.sir = float(bss_res["sir"][i])
            s.sar = float(bss_res["sar"][i])
        if mix_si is not None:
            s.mixture_si_sdr = float(mix_si[i])
            s.si_sdr_improvement = _improvement(s.si_sdr, s.mixture_si_sdr)
        if mix_sdr is not None and s.sdr is not None:
            s.mixture_sdr = float(mix_sdr[i])
            s.sdr_improvement = _improvement(s.sdr, s.mixture_sdr)
        scores.append(s)
    return scores


# --------------------------------------------------------------------------------------------
# oracle


def oracle_wiener_estimates(sources: Any, *, config: STFTConfig, power: float = 2.0) -> np.ndarray:
    """Oracle soft-mask estimates: the ceiling of any masking method at this STFT.

    The mixture ``x = sum_i s_i`` is transformed with ``config``; source ``i`` gets the mask
    ``|S_i|^p / sum_j |S_j|^p`` (an equal split where every source is zero), and the masked
    STFTs are inverted to the original length. The estimates sum to the mixture (up to the
    STFT round trip).

    Parameters
    ----------
    sources : np.ndarray, shape (n_sources, n_samples)
        The true sources (a 1-D array is one source: its estimate is itself).
    config : STFTConfig
        The STFT the masking method works in.
    power : float
        Mask exponent ``p`` (> 0): 2 is the Wiener-like ratio of powers, 1 of magnitudes.

    Returns
    -------
    np.ndarray, shape (n_sources, n_samples), float64
    """
    from nmfsep.masks import apply_masks, wiener_masks
    from nmfsep.spectral import istft, stft

    src = _as_2d(sources, "sources")
    if not isinstance(config, STFTConfig):
        raise ParameterError(f"config must be an STFTConfig, got {type(config).__name__}")
    if isinstance(power, bool) or not np.isfinite(power) or power <= 0:
        raise ParameterError(f"power must be a positive number, got {power!r}")
    n = src.shape[1]
    mix = src.sum(axis=0)
    X = stft(mix, config)
    S = np.abs(stft(src, config))
    masks = wiener_masks(S, power=float(power))
    out = istft(apply_masks(masks, X), config, length=n)
    return np.asarray(out, dtype=np.float64)
