"""Scoring separated files against references: what ``nmfsep evaluate`` computes.

:func:`match_references` pairs estimate files with reference files; :func:`evaluate_files`
loads them, scores every estimate (BSS-eval SDR/SIR/SAR, SI-SDR, improvements over the mixture)
and, with ``oracle=True``, the oracle Wiener mask from the true sources (the ceiling of any
masking method at the model's STFT). Multichannel files are scored on their channel mean.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from nmfsep.errors import NmfsepError, ParameterError

__all__ = ["METRICS", "evaluate_files", "match_references", "perceptual_scores", "require_metrics"]

#: What ``evaluate --metrics`` can compute: BSS-eval (``eval`` extra: fast-bss-eval), SI-SDR
#: (no extra), STOI / extended STOI (``eval``: pystoi) and wide-band PESQ (``eval``: pesq).
METRICS = ("sdr", "sir", "sar", "si-sdr", "stoi", "estoi", "pesq")
DEFAULT_METRICS = ("sdr", "sir", "sar", "si-sdr")
#: Module and extra each perceptual metric needs.
_NEEDS = {"stoi": "pystoi", "estoi": "pystoi", "pesq": "pesq"}

PathLike = str | os.PathLike[str]


def match_references(
    estimates: Sequence[PathLike],
    references: Sequence[PathLike] = (),
    *,
    reference_dir: PathLike | None = None,
) -> list[Path]:
    """The reference files: those given, plus those of ``reference_dir`` whose names match the
    estimates' (every file of the directory when none match).

    Raises
    ------
    ParameterError
        No reference at all.
    NmfsepError
        ``reference_dir`` is not a directory.
    """
    refs = [Path(r) for r in references]
    if reference_dir is not None:
        directory = Path(reference_dir)
        if not directory.is_dir():
            raise NmfsepError("not a directory", path=directory)
        from nmfsep.audio import find_audio_files

        available = {p.stem: p for p in find_audio_files(directory)}
        if not available:
            raise NmfsepError("no audio files in the reference directory", path=directory)
        matched = [available[Path(e).stem] for e in estimates if Path(e).stem in available]
        refs += matched or list(available.values())
    if not refs:
        raise ParameterError("give --reference FILE (one per source) or --reference-dir DIR")
    return refs


def _load(
    paths: Sequence[Path], sr: int | None, channels: dict[Path, int] | None = None
) -> tuple[np.ndarray, int]:
    """The files' channel means, cut to the shortest, at one rate (``channels`` collects each
    file's channel count)."""
    from nmfsep.audio import load_audio

    signals, rate = [], sr
    for path in paths:
        y, file_sr = load_audio(path)
        if channels is not None:
            channels[path] = int(y.shape[0])
        if rate is None:
            rate = file_sr
        elif file_sr != rate:
            raise NmfsepError(
                f"sample rate {file_sr} Hz differs from the others ({rate} Hz)", path=path
            )
        signals.append(y.mean(axis=0))
    n = min(len(s) for s in signals)
    assert rate is not None
    return np.stack([s[:n] for s in signals]), rate


#: Bytes per sample of every file while it is scored: the float32 load, its float64 channel
#: mean and the scorers' copies (measured: 36 bytes per sample at peak for two 20-minute files).
_BYTES_PER_SAMPLE = 48


def _check_memory(paths: Sequence[Path], n_bss: int) -> None:
    """Refuse, before loading anything, what would not fit the limit table's array budget:
    BSS-eval solves all ``n_bss`` references jointly (its Gram matrix grows with the square of
    their number: 24 references of 1 s took 2.7 GB), and the files are scored whole."""
    from nmfsep import limits
    from nmfsep.audio import audio_info
    from nmfsep.metrics import FILTER_LENGTH

    side = FILTER_LENGTH * n_bss
    gram = 5 * 8 * side * side // 2  # its float64 (taps x n)^2 system, 2.5 times at peak
    if gram > limits.MAX_ARRAY_BYTES:
        raise ParameterError(
            f"BSS-eval of {n_bss} references would need {limits.format_bytes(gram)} (it scores "
            f"them jointly), over the limit of {limits.format_bytes(limits.MAX_ARRAY_BYTES)}: "
            "--no-bss scores SI-SDR alone, or score fewer sources at a time"
        )
    samples = 0
    for path in paths:
        try:
            info = audio_info(path)
        except NmfsepError:  # the load names the problem (or ffmpeg decodes it)
            continue
        samples += info.frames * info.channels
    need = samples * _BYTES_PER_SAMPLE
    if need > limits.MAX_ARRAY_BYTES:
        raise NmfsepError(
            f"scoring these {len(paths)} files whole would need {limits.format_bytes(need)}, "
            f"over the limit of {limits.format_bytes(limits.MAX_ARRAY_BYTES)}: score shorter "
            "excerpts of them"
        )


def evaluate_files(
    estimates: Sequence[PathLike],
    references: Sequence[PathLike],
    *,
    mixture: PathLike | None = None,
    oracle: bool = False,
    model: PathLike | None = None,
    bss: bool = True,
    perceptual: Sequence[str] = (),
    warn: Any = None,
) -> tuple[list[dict[str, Any]], int]:
    """Score estimate files against reference files.

    Estimates are matched to references by file name when every reference's name is the name
    of one estimate (in any order; estimates of no reference's name are then left out),
    otherwise by the permutation with the best mean SI-SDR (``cluster`` outputs).

    Parameters
    ----------
    estimates, references : sequences of paths
    mixture : path, optional
        The unprocessed mixture: adds improvements over it.
    oracle : bool
        Also score the oracle Wiener mask (needs ``mixture``), at the STFT of ``model``
        (default: the built-in model's).
    bss : bool
        BSS-eval SDR/SIR/SAR (the ``eval`` extra); SI-SDR only when False.
    perceptual : sequence of str
        Also ``stoi``, ``estoi``, ``pesq`` (:func:`perceptual_scores`; the ``eval`` extra).
    warn : callable(str), optional
        Told (one line) when the files' lengths differ by more than 1 %.

    Returns
    -------
    rows : list of dict
        One per reference: ``name``, ``estimate``, ``reference`` and the scores.
    sr : int
    """
    from nmfsep.metrics import FILTER_LENGTH as BSS_FILTER_TAPS
    from nmfsep.metrics import evaluate_separation, oracle_wiener_estimates

    if oracle and mixture is None:
        raise ParameterError("--oracle needs --mixture")
    refs = [Path(r) for r in references]
    ests = [Path(e) for e in estimates]
    given = list(ests)
    # by name when every reference's name is the name of exactly one estimate, in any order
    # (a shell glob sorts noise.wav before speech.wav); the other estimates are not scored
    ref_stems, est_stems = [p.stem for p in refs], [p.stem for p in ests]
    by_name = len(set(ref_stems)) == len(ref_stems) and all(
        est_stems.count(stem) == 1 for stem in ref_stems
    )
    unnamed = 0
    if by_name:
        unnamed = len(ests) - len(refs)
        ests = [ests[est_stems.index(stem)] for stem in ref_stems]
    elif warn is not None and set(ref_stems) & set(est_stems):
        warn(
            "the estimates' names do not all match the references': they are paired by the "
            "best SI-SDR instead"
        )
    _check_memory(
        [*refs, *ests, *([] if mixture is None else [Path(mixture)])], len(refs) if bss else 0
    )
    channels: dict[Path, int] = {}
    ref, sr = _load(refs, None, channels)
    est, _ = _load(ests, sr, channels)
    mix = _load([Path(mixture)], sr, channels)[0][0] if mixture is not None else None
    if warn is not None and len(set(channels.values())) > 1:
        counts = " and ".join(str(c) for c in sorted(set(channels.values())))
        warn(f"the files have {counts} channels: each file is scored on its channel mean")
    names = ref_stems
    n = min(ref.shape[1], est.shape[1], *([] if mix is None else [mix.shape[0]]))
    longest = max(ref.shape[1], est.shape[1], *([] if mix is None else [mix.shape[0]]))
    if bss and n < BSS_FILTER_TAPS:
        lengths = {p: len(y) for p, y in zip([*refs, *ests], [*ref, *est], strict=True)}
        if mix is not None:
            lengths[Path(mixture)] = len(mix)  # type: ignore[arg-type]
        short = min(lengths, key=lengths.__getitem__)
        raise NmfsepError(
            f"is {lengths[short]} samples long: BSS-eval needs {BSS_FILTER_TAPS} or more (its "
            "distortion filter); --no-bss scores SI-SDR alone",
            path=short,
        )
    if warn is not None and longest > 1.01 * n:
        warn(
            f"the files' lengths differ by more than 1 % ({n / sr:.2f} s to {longest / sr:.2f} "
            f"s): scored on the first {n / sr:.2f} s; are they from the same recording?"
        )
    if warn is not None and unnamed:
        warn(
            f"{unnamed} estimate(s) have no reference of the same name and are not scored "
            "(one --reference per source)"
        )
    if warn is not None and len(ests) > len(refs):
        warn(
            f"{len(ests)} estimates for {len(refs)} reference(s): each reference is scored "
            f"against its best-matching estimate; {len(ests) - len(refs)} estimate(s) are not "
            "scored (one --reference per source)"
        )
    scores = evaluate_separation(
        ref[:, :n],
        est[:, :n],
        mixture=None if mix is None else mix[:n],
        names=names,
        solve_permutation=not by_name,
        bss=bss,
    )
    rows = [
        {
            "estimate": str(ests[s.estimate_index]),
            "reference": str(refs[i]),
            **s.to_dict(),
            "estimate_index": given.index(ests[s.estimate_index]),  # as given
        }
        for i, s in enumerate(scores)
    ]
    if warn is not None:
        for i, path in enumerate(refs):
            if not np.any(ref[i, :n]):
                warn(f"{path}: the reference is silent: SDR and SI-SDR are undefined against it")
    if perceptual:
        for i, (row, s) in enumerate(zip(rows, scores, strict=True)):
            got = perceptual_scores(ref[i, :n], est[s.estimate_index, :n], sr, perceptual)
            row.update(got)
            missing = [m for m, v in got.items() if v is None]
            if warn is not None and missing and np.any(ref[i, :n]):
                why = {
                    "stoi": "STOI needs about 0.4 s of speech",
                    "pesq": "PESQ found no utterance",
                }
                reasons = dict.fromkeys(why["pesq" if m == "pesq" else "stoi"] for m in missing)
                warn(
                    f"{ests[s.estimate_index]}: no {' or '.join(m.upper() for m in missing)} "
                    f"score ({'; '.join(reasons)})"
                )
    if oracle and mix is not None:
        from nmfsep.engine import stft_for_rate
        from nmfsep.model import default_model, load_model

        the_model = default_model() if model is None else load_model(model)
        config = stft_for_rate(the_model.stft, the_model.sr, sr)
        sources = ref[:, :n]
        rest = mix[:n] - sources.sum(axis=0)
        if float(np.sum(rest**2)) > 1e-6 * float(np.sum(mix[:n] ** 2)):
            sources = np.concatenate([sources, rest[np.newaxis]])
        oracle_est = oracle_wiener_estimates(sources, config=config)
        oracle_scores = evaluate_separation(
            ref[:, :n],
            oracle_est[: ref.shape[0]],
            mixture=mix[:n],
            names=names,
            solve_permutation=False,
            bss=bss,
        )
        for row, o in zip(rows, oracle_scores, strict=True):
            row.update(
                oracle_sdr=o.sdr,
                oracle_si_sdr=o.si_sdr,
                oracle_sdr_improvement=o.sdr_improvement,
                oracle_si_sdr_improvement=o.si_sdr_improvement,
            )
    return rows, sr


def require_metrics(metrics: Sequence[str]) -> None:
    """Refuse (ParameterError, naming the ``eval`` extra) metrics whose package is missing."""
    import importlib.util

    missing = sorted(
        {_NEEDS[m] for m in metrics if m in _NEEDS and importlib.util.find_spec(_NEEDS[m]) is None}
    )
    if missing:
        raise ParameterError(
            f"--metrics {','.join(metrics)} needs {' and '.join(missing)} (the 'eval' extra): "
            "pip install 'nmfsep[eval]'"
        )


def perceptual_scores(
    reference: np.ndarray, estimate: np.ndarray, sr: int, metrics: Sequence[str]
) -> dict[str, float | None]:
    """STOI, extended STOI (pystoi: the signals are resampled to 10 kHz inside) and PESQ
    (ITU-T P.862.2 wide band at 16 kHz, narrow band at 8 kHz; other rates are resampled to
    16 kHz first) of one estimate; None where the metric is undefined (silent reference).

    Raises
    ------
    ParameterError
        A metric whose package is missing (the message names the ``eval`` extra).
    """
    require_metrics(metrics)
    ref = np.asarray(reference, dtype=np.float64)
    est = np.asarray(estimate, dtype=np.float64)
    out: dict[str, float | None] = {}
    if float(np.max(np.abs(ref), initial=0.0)) == 0.0:
        return dict.fromkeys(metrics)
    for name in metrics:
        if name in ("stoi", "estoi"):
            import warnings

            from pystoi import stoi

            # pystoi needs 30 frames (384 ms at 10 kHz) of speech after dropping silent ones:
            # on fewer it warns and returns a 1e-5 placeholder, on a few samples it raises.
            # Neither is a score: None (the caller warns).
            with warnings.catch_warnings(record=True) as said:
                warnings.simplefilter("always")
                try:
                    value: float | None = float(stoi(ref, est, sr, extended=name == "estoi"))
                except (ValueError, IndexError):
                    value = None
            out[name] = None if said else value
        elif name == "pesq":
            out["pesq"] = _pesq(ref, est, sr)
    return out


def _pesq(ref: np.ndarray, est: np.ndarray, sr: int) -> float | None:
    from pesq import PesqError, pesq

    if sr not in (8000, 16000):
        from nmfsep.audio import resample

        ref = resample(ref[np.newaxis].astype(np.float32), sr, 16000)[0].astype(np.float64)
        est = resample(est[np.newaxis].astype(np.float32), sr, 16000)[0].astype(np.float64)
        sr = 16000
    try:
        return float(pesq(sr, ref, est, "wb" if sr == 16000 else "nb"))
    except (PesqError, ValueError):  # no utterance found, too short
        return None


#: DNSMOS scores ``evaluate --no-reference`` reports (Reddy et al., "DNSMOS P.835", ICASSP
#: 2022): speech quality, background-noise intrusiveness, overall, and the P.808 overall score.
DNSMOS_KEYS = ("sig_mos", "bak_mos", "ovrl_mos", "p808_mos")
MOS_EXTRA_MESSAGE = (
    "--no-reference needs speechmos and onnxruntime (the 'mos' extra): pip install 'nmfsep[mos]'"
)


def require_mos() -> None:
    """Refuse (ParameterError, naming the ``mos`` extra) when DNSMOS cannot run here."""
    import importlib.util

    if any(importlib.util.find_spec(m) is None for m in ("speechmos", "onnxruntime")):
        raise ParameterError(MOS_EXTRA_MESSAGE)


def dnsmos_files(
    paths: Sequence[PathLike], *, warn: Callable[[str], None] | None = None
) -> list[dict[str, Any]]:
    """No-reference quality of each file: DNSMOS P.835 (SIG, BAK, OVRL) and P.808, 1-5.

    The models are the ONNX files shipped inside the ``speechmos`` wheel (nothing is
    downloaded); each file is scored on its channel mean, resampled to 16 kHz (the models'
    rate).

    Raises
    ------
    ParameterError
        The ``mos`` extra is not installed.
    AudioError
        An unreadable file.
    """
    require_mos()
    import warnings

    from speechmos import dnsmos

    from nmfsep.audio import load_audio

    rows = []
    for path in paths:
        y, _ = load_audio(path, sr=16000, mono=True)
        x = np.asarray(y[0], dtype=np.float32)
        if x.size < 16000:  # the models score windows of about 9 s; under 1 s say nothing
            if warn is not None:
                warn(f"{path}: shorter than 1 s: no DNSMOS score")
            rows.append({"estimate": str(path), **dict.fromkeys(DNSMOS_KEYS)})
            continue
        peak = float(np.abs(x).max(initial=0.0))
        if peak == 0.0:  # the models would score silence as if it were a recording
            if warn is not None:
                warn(f"{path}: silent: no DNSMOS score")
            rows.append({"estimate": str(path), **dict.fromkeys(DNSMOS_KEYS)})
            continue
        if peak > 1.0:  # the models expect samples in [-1, 1]
            x = x / peak
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            scores = dnsmos.run(x, sr=16000)
        rows.append({"estimate": str(path), **{k: float(scores[k]) for k in DNSMOS_KEYS}})
    return rows
