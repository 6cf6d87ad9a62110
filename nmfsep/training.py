"""From the ``SOURCE...`` arguments of ``nmfsep train`` to a trained model.

Each SOURCE is ``FILE``, ``DIR`` (all its audio files) or ``NAME=PATH[,PATH...]`` where each
PATH is a file, a directory or a glob pattern. The source's name is NAME, else the file's stem
or the directory's name.
"""

from __future__ import annotations

import glob
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from nmfsep.errors import AudioError, ParameterError
from nmfsep.model import NMFModel

#: Audio read per source at most (seconds): a longer training set is read as the same share of
#: each file (from its start), so reading memory stays bounded whatever the size of the set.
MAX_TRAIN_SECONDS = 1800.0


def _expand(path: str) -> list[Path]:
    from nmfsep.audio import find_audio_files

    p = Path(path)
    if p.is_dir():
        files = find_audio_files(p, recursive=True)
        if not files:
            raise AudioError("no audio files in directory", path=p)
        return files
    if p.exists():
        return [p]
    if set("*?[") & set(path):
        files = sorted(Path(m) for m in glob.glob(path, recursive=True) if Path(m).is_file())
        if not files:
            raise AudioError("pattern matches no file", path=path)
        return files
    raise AudioError("no such file", path=p)


def parse_sources(specs: Sequence[str]) -> dict[str, list[Path]]:
    """Parse ``SOURCE`` arguments into ``{name: [files]}``, in the order given.

    Raises
    ------
    ParameterError
        Empty or repeated source names, malformed ``NAME=`` arguments.
    AudioError
        A path that does not exist or a directory without audio files.
    """
    sources: dict[str, list[Path]] = {}
    for spec in specs:
        name, sep, paths = spec.partition("=")
        if sep and not Path(spec).exists():
            name = name.strip()
            if not name or "/" in name or name.startswith("."):
                raise ParameterError(f"bad source name in {spec!r}")
            if not paths.strip():
                raise ParameterError(f"source {name!r} names no files")
            files = [f for part in paths.split(",") if part.strip() for f in _expand(part.strip())]
        else:
            files = _expand(spec)
            p = Path(spec)
            name = p.name if p.is_dir() else p.stem
        if name in sources:
            raise ParameterError(
                f"source {name!r} is named twice; use NAME=PATH,PATH to give one source "
                "several files"
            )
        sources[name] = files
    return sources


def train_from_files(
    sources: dict[str, list[Path]],
    *,
    sr: int | None = None,
    n_components: int,
    beta: float | str,
    l1: float = 0.0,
    l2: float = 0.0,
    n_fft: int | None = None,
    hop_length: int | None = None,
    context: int | None = None,
    max_iter: int,
    tol: float,
    random_state: int | None = 0,
    progress: Callable[[str], None] | None = None,
    callback: Callable[[str, int, float], None] | None = None,
) -> NMFModel:
    """Read each source's files (resampled to ``sr``) and train a model on them.

    ``sr`` defaults to the first file's rate; ``n_fft`` to about 64 ms at that rate and
    ``hop_length`` to ``n_fft // 4``. See :func:`nmfsep.separation.train_model` for the rest.
    """
    from nmfsep import __version__
    from nmfsep.audio import audio_info, load_audio
    from nmfsep.separation import DEFAULT_CONTEXT, default_stft, train_model
    from nmfsep.spectral import STFTConfig

    say = progress or (lambda message: None)
    first = next(iter(sources.values()))[0]
    rate = int(sr or audio_info(first).sr)
    config = default_stft(rate)
    if n_fft is not None or hop_length is not None:
        nf = n_fft or config.n_fft
        config = STFTConfig(n_fft=nf, hop_length=hop_length or nf // 4)
    audio: dict[str, list[Any]] = {}
    files_meta: dict[str, list[dict[str, Any]]] = {}
    for name, files in sources.items():
        durations = [audio_info(f).duration for f in files]
        total = sum(durations)
        share = min(1.0, MAX_TRAIN_SECONDS / total) if total > 0 else 1.0
        audio[name] = []
        files_meta[name] = []
        for f, seconds in zip(files, durations, strict=True):
            y, _ = load_audio(f, sr=rate, duration=seconds * share if share < 1.0 else None)
            audio[name].append(y)
            files_meta[name].append({"file": f.name, "seconds": round(seconds, 3)})
        note = f" (reading {share:.0%} of it)" if share < 1.0 else ""
        say(f"{name}: {len(files)} file(s), {total:.1f} s of audio{note}")
    model = train_model(
        audio,
        sr=rate,
        n_components=n_components,
        beta=beta,
        l1=l1,
        l2=l2,
        stft_config=config,
        context=DEFAULT_CONTEXT if context is None else context,
        max_iter=max_iter,
        tol=tol,
        random_state=random_state,
        metadata={"nmfsep_version": __version__, "training": {"files": files_meta}},
        callback=callback,
    )
    for name, stats in model.metadata["training"]["sources"].items():
        subset = (
            f", a random {stats['frames_used']} of {stats['frames_audible']} audible frames"
            if stats["frames_used"] < stats["frames_audible"]
            else ""
        )
        say(
            f"{name}: {model.n_components[name]} bases, {stats['n_iter']} iterations"
            f"{'' if stats['converged'] else ' (not converged)'}{subset}"
        )
    return model
