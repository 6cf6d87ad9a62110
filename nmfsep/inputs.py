"""What the user named, as files: inputs of a batch (files, directories, globs, file lists) and
the ``SOURCE`` arguments of ``nmfsep train``.

Each train SOURCE is ``FILE``, ``DIR`` (all its audio files) or ``NAME=PATH[,PATH...]`` where each
PATH is a file, a directory or a glob pattern. The source's name is NAME, else the file's stem or
the directory's name.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from nmfsep.errors import AudioError, ParameterError

__all__ = ["InputItem", "expand_inputs", "parse_sources", "read_file_list"]

_GLOB_CHARS = set("*?[")


@dataclass
class InputItem:
    """One input as the user named it, expanded: a file path, or the error that stops it."""

    path: str
    track: str
    error: str | None = None


def expand_inputs(items: Iterable[str], *, recursive: bool = False) -> list[InputItem]:
    """Turn files, directories and glob patterns into a list of input files.

    Parameters
    ----------
    items : iterable of str
        What the user named. A directory gives its audio files (sorted; with ``recursive``
        also those of its subdirectories); a name that does not exist but contains ``* ? [``
        is a glob pattern. Anything else that does not exist is kept with an error, so that
        one bad name does not stop the batch.
    recursive : bool
        Descend into subdirectories of directory inputs (and ``**`` in globs).

    Returns
    -------
    list of InputItem
        In the order given; duplicates (the same resolved file twice) are dropped.
    """
    from nmfsep.audio import find_audio_files

    out: list[InputItem] = []
    seen: set[str] = set()

    def add(path: Path, track: str) -> None:
        key = os.path.realpath(path)
        if key not in seen:
            seen.add(key)
            out.append(InputItem(path=str(path), track=track))

    for item in items:
        path = Path(item)
        if path.is_dir():
            files = find_audio_files(path, recursive=recursive)
            if not files:
                out.append(
                    InputItem(path=item, track=path.name, error="no audio files in directory")
                )
            for f in files:
                rel = f.relative_to(path).with_suffix("")
                add(f, rel.as_posix())
        elif path.exists():
            add(path, path.stem)
        elif not _GLOB_CHARS & set(item):
            out.append(InputItem(path=item, track=path.stem, error="no such file"))
        else:
            matches = sorted(glob.glob(item, recursive=recursive))
            files = [Path(m) for m in matches if Path(m).is_file()]
            if not files:
                out.append(InputItem(path=item, track=path.stem, error="pattern matches no file"))
            for f in files:
                add(f, f.stem)
    return out


def read_file_list(source: str, stdin: Iterable[str] | None = None) -> list[str]:
    """Read input names, one per line (``-``: standard input); blank and ``#`` lines skipped."""
    import sys

    if source == "-":
        lines: Iterable[str] = stdin if stdin is not None else sys.stdin
    else:
        try:
            with open(source, encoding="utf-8") as fh:
                lines = fh.read().splitlines()
        except OSError as exc:
            raise ParameterError(f"cannot read file list: {exc.strerror}", path=source) from None
        except UnicodeDecodeError:
            raise ParameterError("file list is not UTF-8 text", path=source) from None
    return [s.strip() for s in lines if s.strip() and not s.lstrip().startswith("#")]


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
    if _GLOB_CHARS & set(path):
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
