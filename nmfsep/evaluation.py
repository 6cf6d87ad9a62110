"""Scoring separated files against references: what ``nmfsep evaluate`` computes.

:func:`match_references` pairs estimate files with reference files; :func:`evaluate_files`
loads them, scores every estimate (BSS-eval SDR/SIR/SAR, SI-SDR, improvements over the mixture)
and, with ``oracle=True``, the oracle Wiener mask from the true sources (the ceiling of any
masking method at the model's STFT). Multichannel files are scored on their channel mean.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from nmfsep.errors import NmfsepError, ParameterError

__all__ = ["evaluate_files", "match_references"]

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
        matched = [available[Path(e).stem] for e in estimates if Path(e).stem in available]
        refs += matched or list(available.values())
    if not refs:
        raise ParameterError("give --reference FILE (one per source) or --reference-dir DIR")
    return refs


def _load(paths: Sequence[Path], sr: int | None) -> tuple[np.ndarray, int]:
    from nmfsep.audio import load_audio

    signals, rate = [], sr
    for path in paths:
        y, file_sr = load_audio(path)
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


def evaluate_files(
    estimates: Sequence[PathLike],
    references: Sequence[PathLike],
    *,
    mixture: PathLike | None = None,
    oracle: bool = False,
    model: PathLike | None = None,
    bss: bool = True,
) -> tuple[list[dict[str, Any]], int]:
    """Score estimate files against reference files.

    Estimates are matched to references by file name when every name matches, otherwise by
    the permutation with the best mean SI-SDR (``cluster`` outputs).

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

    Returns
    -------
    rows : list of dict
        One per reference: ``name``, ``estimate``, ``reference`` and the scores.
    sr : int
    """
    from nmfsep.metrics import evaluate_separation, oracle_wiener_estimates

    if oracle and mixture is None:
        raise ParameterError("--oracle needs --mixture")
    refs = [Path(r) for r in references]
    ests = [Path(e) for e in estimates]
    ref, sr = _load(refs, None)
    est, _ = _load(ests, sr)
    mix = _load([Path(mixture)], sr)[0][0] if mixture is not None else None
    names = [p.stem for p in refs]
    by_name = [e.stem for e in ests] == names
    n = min(ref.shape[1], est.shape[1], *([] if mix is None else [mix.shape[0]]))
    scores = evaluate_separation(
        ref[:, :n],
        est[:, :n],
        mixture=None if mix is None else mix[:n],
        names=names,
        solve_permutation=not by_name,
        bss=bss,
    )
    rows = [
        {"estimate": str(ests[s.estimate_index]), "reference": str(refs[i]), **s.to_dict()}
        for i, s in enumerate(scores)
    ]
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
