"""What the user named, as files: inputs of a batch (files, directories, globs, file lists) and
the ``SOURCE`` arguments of ``nmfsep train``.

Each train SOURCE is ``FILE``, ``DIR`` (all its audio files) or ``NAME=PATH[,PATH...]`` where each
PATH is a file, a directory or a glob pattern. The source's name is NAME, else the file's stem or
the directory's name.
"""

from __future__ import annotations

import contextlib
import errno
import glob
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nmfsep.errors import AudioError, ParameterError

__all__ = ["InputItem", "expand_inputs", "parse_sources", "read_file_list"]

_GLOB_CHARS = set("*?[")


@dataclass
class InputItem:
    """One input as the user named it, expanded: a file path, or the error that stops it."""

    path: str
    track: str
    error: str | None = None


#: Longest line of a ``--files-from`` list (bytes): a path is at most 4096 bytes (PATH_MAX).
MAX_LIST_LINE = 4096
#: Most entries in a ``--files-from`` list: a million files is a very large batch already.
MAX_LIST_ENTRIES = 1_000_000
#: Largest ``--files-from`` list (bytes): 64 MiB holds a million long paths.
MAX_LIST_BYTES = 64 << 20
#: Name endings of files nmfsep writes itself (temporary files, claims): never inputs.
_OWN_SUFFIXES = (".nmfsep-tmp", ".nmfsep-lock")


def _is_own_file(path: Path) -> bool:
    return path.name.endswith(_OWN_SUFFIXES)


def _under(path: str, root: str) -> bool:
    """``path`` is ``root`` or inside it (both real paths)."""
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def _excluded(path: Path, roots: Sequence[str], base: str) -> bool:
    """``path`` (found by expanding the directory ``base``) is in one of the output trees
    ``roots``: in a subdirectory of one, or directly in one that lies strictly inside
    ``base`` (when OUTDIR *is* the input directory, its own files are still inputs)."""
    if not roots:
        return False
    parent = os.path.realpath(path.parent)
    for root in roots:
        if parent != root and _under(parent, root):
            return True
        if parent == root and root != base and _under(root, base):
            return True
    return False


def _glob_base(pattern: str) -> str:
    parts: list[str] = []
    for part in Path(pattern).parts:
        if glob.has_magic(part):
            break
        parts.append(part)
    return os.path.realpath(os.path.join(*parts) if parts else ".")


def expand_inputs(
    items: Iterable[str], *, recursive: bool = False, exclude: Sequence[str | os.PathLike[str]] = ()
) -> list[InputItem]:
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
    exclude : sequence of paths
        Directories whose files directories and globs never give (the output directory: a
        re-run of ``nmfsep separate . -r`` must not separate its own outputs). Files named
        explicitly are kept. nmfsep's own temporary and claim files are always left out.

    Returns
    -------
    list of InputItem
        In the order given; duplicates (the same resolved file twice) are dropped.
    """
    from nmfsep.audio import find_audio_files

    out: list[InputItem] = []
    seen: set[str] = set()
    roots = [os.path.realpath(d) for d in exclude]

    def add(path: Path, track: str) -> None:
        key = os.path.realpath(path)
        if key not in seen:
            seen.add(key)
            out.append(InputItem(path=str(path), track=track))

    def found(files: Iterable[Path], base: str) -> list[Path]:
        return [f for f in files if not _is_own_file(f) and not _excluded(f, roots, base)]

    for item in items:
        path = Path(item)
        if path.is_dir():
            files = found(find_audio_files(path, recursive=recursive), os.path.realpath(path))
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
            out.append(InputItem(path=item, track=path.stem, error=_why_missing(path)))
        else:
            matches = sorted(glob.glob(item, recursive=recursive))
            files = found((Path(m) for m in matches if Path(m).is_file()), _glob_base(item))
            if not files:
                out.append(InputItem(path=item, track=path.stem, error="pattern matches no file"))
            for f in files:
                add(f, f.stem)
    return out


def read_file_list(source: str, stdin: Any = None) -> list[str]:
    """Read input names, one per line (``-``: standard input); blank and ``#`` lines skipped.

    The list is read as bytes and decoded like file names (:func:`os.fsdecode`: names that are
    not UTF-8 survive), in bounded memory: a line longer than :data:`MAX_LIST_LINE` bytes, more
    than :data:`MAX_LIST_ENTRIES` entries or :data:`MAX_LIST_BYTES` in all, a NUL byte, or a
    FIFO/device that never ends a line (``/dev/zero``) is refused with the line number.

    Raises
    ------
    ParameterError
        Unreadable list, or one of the limits above.
    """
    import sys

    where = "the file list on standard input" if source == "-" else "the file list"
    path = None if source == "-" else source
    names: list[str] = []
    total = 0
    with contextlib.ExitStack() as stack:
        if source == "-":
            fh: Any = stdin if stdin is not None else sys.stdin
            fh = getattr(fh, "buffer", fh)
            if not hasattr(fh, "readline"):  # an iterable of lines (tests, library callers)
                import io

                fh = io.BytesIO("\n".join(fh).encode("utf-8", "surrogateescape"))
        else:
            try:
                if os.path.isdir(source):
                    raise ParameterError("file list is a directory", path=source)
                fh = stack.enter_context(open(source, "rb"))
            except OSError as exc:
                raise ParameterError(
                    f"cannot read file list: {exc.strerror}", path=source
                ) from None
        number = 0
        while True:
            try:
                line = fh.readline(MAX_LIST_LINE + 2)
            except OSError as exc:
                raise ParameterError(f"cannot read file list: {exc.strerror}", path=path) from None
            if not line:
                break
            number += 1
            raw = line.encode("utf-8", "surrogateescape") if isinstance(line, str) else line
            total += len(raw)
            body = raw.rstrip(b"\r\n")
            if number == 1 and body.startswith(b"\xef\xbb\xbf"):  # a UTF-8 BOM (Notepad)
                body = body[3:]
            if len(body) > MAX_LIST_LINE:
                raise ParameterError(
                    f"line {number} of {where} is longer than {MAX_LIST_LINE} "
                    "bytes: not a list of file names?",
                    path=path,
                )
            if b"\0" in body:
                raise ParameterError(
                    f"line {number} of {where} holds a NUL byte "
                    "(use one name per line, not find -print0)",
                    path=path,
                )
            if total > MAX_LIST_BYTES:
                raise ParameterError(
                    f"{where} is larger than {MAX_LIST_BYTES >> 20} MiB", path=path
                )
            name = os.fsdecode(body).strip()
            if not name or name.startswith("#"):
                continue
            names.append(name)
            if len(names) > MAX_LIST_ENTRIES:
                raise ParameterError(
                    f"{where} has more than {MAX_LIST_ENTRIES} entries; split the batch",
                    path=path,
                )
    return names


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
    raise AudioError(_why_missing(p), path=p)


def _why_missing(path: Path) -> str:
    """What a path that does not lead to a file is: missing, or a symbolic link that leads
    nowhere (a loop, or a target that does not exist)."""
    if not path.is_symlink():
        from nmfsep.audio import STDIN_HINT

        return "no such file" + (STDIN_HINT if os.fspath(path) == "-" else "")
    try:
        path.stat()
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "symbolic link loop"
    try:
        return f"dangling symbolic link (to {os.readlink(path)})"
    except OSError:
        return "dangling symbolic link"


def parse_sources(specs: Sequence[str]) -> dict[str, list[Path]]:
    """Parse ``SOURCE`` arguments into ``{name: [files]}``, in the order given.

    Raises
    ------
    ParameterError
        Empty or repeated source names, malformed ``NAME=`` arguments.
    AudioError
        A path that does not exist or a directory without audio files.
    """
    from nmfsep.model import check_source_name

    sources: dict[str, list[Path]] = {}
    for spec in specs:
        name, sep, paths = spec.partition("=")
        if sep and not Path(spec).exists():
            # checked before any file is read (the model would refuse it after training)
            name = check_source_name(name.strip(), ParameterError)
            if not paths.strip():
                raise ParameterError(f"source {name!r} names no files")
            files = [f for part in paths.split(",") if part.strip() for f in _expand(part.strip())]
        else:
            files = _expand(spec)
            p = Path(spec)
            try:
                name = check_source_name(p.name if p.is_dir() else p.stem, ParameterError)
            except ParameterError as exc:
                raise ParameterError(f"{exc.message}: name it with NAME={spec}") from None
        if name in sources:
            raise ParameterError(
                f"source {name!r} is named twice; use NAME=PATH,PATH to give one source "
                "several files"
            )
        sources[name] = files
    return sources
