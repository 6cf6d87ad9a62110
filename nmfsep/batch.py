"""Many inputs to many outputs: output paths, planning, and running jobs in a pool or on Dask.

A *job* is one input file and the output file of each of its sources. Jobs are planned in the
parent process (so that finished inputs are skipped before any work starts and output paths
never collide), then run one per worker process, each worker limited to one BLAS thread so that
``--jobs N`` never oversubscribes the machine. Each job ends as one :class:`JobRecord`.

Safety rules (issue 10):

* **Planning** refuses a template that maps two sources of one input to one path (the whole
  command, :class:`ParameterError`), and, per input, outputs that are an input of the same
  batch, that leave OUTDIR, or that are not regular files (a FIFO, a device, a directory).
* **Claims**: a job first claims its input with a lock file next to its first output
  (``.{name}.nmfsep-lock``, created with ``O_CREAT|O_EXCL``, holding ``pid host``, and held with
  ``flock`` while the job runs). A second run into the same OUTDIR finds the claim held and
  reports the input as ``"claimed"`` instead of doing it again; a lock whose process died (its
  ``flock`` is released by the kernel) is taken over. :func:`cleanup_locks` removes stale ones
  from the directories a run writes into (not a walk of OUTDIR).
* **All or nothing per input**: outputs are written to temporary files and renamed at the end;
  when anything fails after one of them was renamed (disk full on the second source, the
  ``--save-model`` file, the plot), every output this job already put in place is removed, so a
  failed input has no outputs (and a re-run redoes it).
* **Workers die with their parent**: pool workers ask the kernel for ``SIGKILL`` when the parent
  dies (Linux ``PR_SET_PDEATHSIG``) and also poll ``os.getppid()`` (other systems); a Dask task
  checks between blocks whether it was cancelled (its client gone) and stops.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import string
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from nmfsep import defaults
from nmfsep.errors import NmfsepError, ParameterError
from nmfsep.inputs import InputItem
from nmfsep.options import ClusterOptions, SeparateOptions

__all__ = [
    "LOCK_SUFFIX",
    "Job",
    "JobRecord",
    "check_template",
    "cleanup_locks",
    "lock_path",
    "output_paths",
    "output_subtype",
    "plan_jobs",
    "run_job",
    "run_jobs",
    "same_path",
    "summarize",
]

DEFAULT_TEMPLATE = defaults.TEMPLATE
TEMPLATE_FIELDS = ("track", "source", "ext", "dir")
#: Output formats (extensions) libsndfile >= 1.1 writes; ``same`` (the input's container and
#: sample format) is accepted by the command line on top of these.
OUTPUT_FORMATS = ("wav", "flac", "ogg", "opus", "mp3")
#: Containers ``--format same`` keeps (other inputs, e.g. m4a through ffmpeg, give WAV).
SAME_FORMATS = (*OUTPUT_FORMATS, "aiff", "aif", "w64", "rf64", "caf", "au")
#: Suffix of the claim (lock) files; the name is ``.{first output's name}{LOCK_SUFFIX}``.
LOCK_SUFFIX = ".nmfsep-lock"
#: Statuses of a :class:`JobRecord`.
STATUSES = ("ok", "skipped", "claimed", "error")


@dataclass(frozen=True)
class Job:
    """What to do with one input file.

    Attributes
    ----------
    input : str
        Audio file to separate.
    outputs : dict of str to str
        Output path of each source, in the order of the sources.
    options : SeparateOptions or ClusterOptions
        ``separate`` or ``cluster`` (the task follows the type).
    model : str or None
        Model file for ``separate`` (None: the built-in default model).
    plot : str or None
        PNG to draw the separation into.
    save_model : str or None
        Where ``cluster`` writes its clustered model.
    mono : bool
        Down-mix the input first.
    threads : int
        Blocks separated in parallel within this job.
    clip_mode : str
        What to do with samples over full scale (:func:`nmfsep.audio.plan_clip`): ``float``
        (default: sources still sum to the mixture), ``rescale`` or ``clamp``.
    skip_existing : bool
        Once the job holds its claim, skip it when all its outputs exist (another run did it).
    claim : bool
        Claim the input with a lock file first (see the module notes).
    auto_sources : bool
        ``cluster --n-sources auto``: ``outputs`` are the most sources it may find; the job
        writes the first N once N is chosen (and removes planned outputs beyond N left by an
        earlier run of the input), and any existing output counts as done.
    """

    input: str
    outputs: dict[str, str]
    options: SeparateOptions | ClusterOptions
    model: str | None = None
    plot: str | None = None
    #: Frequency axis of the plot: log (default), linear or mel.
    plot_scale: str = "log"
    save_model: str | None = None
    mono: bool = False
    threads: int = 1
    clip_mode: str = "float"
    skip_existing: bool = True
    claim: bool = True
    start: float = 0.0
    duration: float | None = None
    subtype: str | None = None
    auto_sources: bool = False

    @property
    def task(self) -> str:
        return "cluster" if isinstance(self.options, ClusterOptions) else "separate"

    def written(self) -> list[str]:
        """Every file the job writes: the outputs, the model, the plots."""
        plots = plot_files(self.plot, cluster=self.task == "cluster")
        return [*self.outputs.values(), *([self.save_model] if self.save_model else []), *plots]


def plot_files(plot: str | None, *, cluster: bool) -> list[str]:
    """The pictures of a job whose ``--plot`` file is ``plot`` (``cluster`` also draws its
    bases beside it); they are outputs like the audio."""
    if plot is None:
        return []
    return [plot, *([str(Path(plot).with_name("bases.png"))] if cluster else [])]


def partial_outputs(path: str) -> str:
    """Why an input whose outputs exist only in part is not redone without --overwrite."""
    return f"output {path} exists but not all of its outputs do; use --overwrite to redo it"


@dataclass
class JobRecord:
    """What happened to one input (one entry of ``--json``'s ``files``).

    ``status`` is ``"ok"``, ``"skipped"`` (outputs exist), ``"claimed"`` (another run holds
    the input's claim: it is doing it) or ``"error"`` (``error`` says why, on one line).
    ``notes`` are one-line notices for stderr (e.g. what the clipping policy did).
    """

    input: str
    status: str
    outputs: dict[str, str] = field(default_factory=dict)
    error: str | None = None
    duration: float = 0.0
    seconds: float = 0.0
    settings: dict[str, Any] | None = None
    plot: str | None = None
    model: str | None = None
    notes: list[str] | None = None
    realtime: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (unset optional fields left out)."""
        d = asdict(self)
        return {k: v for k, v in d.items() if v is not None or k == "error"}


def check_template(template: str) -> None:
    """Refuse output templates that are malformed or cannot name one file per source.

    Fields are the plain names of :data:`TEMPLATE_FIELDS` (no attribute or index access, no
    ``!r`` conversion: they could print object addresses), with a string format spec that is
    not nested (``{track:{source}}``) and has no width or precision over
    :data:`nmfsep.limits.MAX_TEMPLATE_WIDTH`.
    """
    import re

    from nmfsep import limits

    if not isinstance(template, str) or not template:
        raise ParameterError("--filename template must not be empty")
    if any(ord(c) < 32 or ord(c) == 127 for c in template):
        raise ParameterError(
            f"--filename template {template!r} must not contain control characters"
        )
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ParameterError(f"bad --filename template {template!r}: {exc}") from None
    fields: set[str] = set()
    for _, name, spec, conversion in parsed:
        if name is None:
            continue
        if name not in TEMPLATE_FIELDS:
            raise ParameterError(
                f"bad --filename template {template!r}: unknown field(s) {name}; "
                f"use {', '.join('{' + f + '}' for f in TEMPLATE_FIELDS)}"
            )
        if conversion is not None:
            raise ParameterError(
                f"bad --filename template {template!r}: conversions like !{conversion} "
                "are not allowed"
            )
        if spec and ("{" in spec or "}" in spec):
            raise ParameterError(
                f"bad --filename template {template!r}: nested fields in a format spec "
                "are not allowed"
            )
        if spec:
            widths = [int(n) for n in re.findall(r"\d+", spec)]
            if widths and max(widths) > limits.MAX_TEMPLATE_WIDTH:
                raise ParameterError(
                    f"bad --filename template {template!r}: width {max(widths)} in "
                    f"{{{name}:{spec}}} is over the limit of {limits.MAX_TEMPLATE_WIDTH}"
                )
            try:
                format("x", spec)
            except (ValueError, TypeError) as exc:
                raise ParameterError(
                    f"bad --filename template {template!r}: {{{name}:{spec}}}: {exc}"
                ) from None
        fields.add(name)
    if "source" not in fields:
        raise ParameterError(f"--filename template {template!r} must contain {{source}}")
    if os.path.isabs(template) or template.startswith("~"):
        raise ParameterError(f"--filename template {template!r} must be a relative path")
    if ".." in Path(template).parts:
        raise ParameterError(f"--filename template {template!r} must not contain '..'")


def output_paths(
    outdir: str | os.PathLike[str],
    template: str,
    *,
    track: str,
    input_path: str,
    sources: Sequence[str],
    ext: str,
) -> dict[str, str]:
    """The output file of each source, refusing any path that would leave ``outdir``.

    Raises
    ------
    ParameterError
        When the formatted path is absolute, escapes ``outdir`` (``..``), has a name component
        longer than 255 bytes or a path longer than 4096 bytes, or holds a NUL byte.
    """
    root = Path(os.path.abspath(outdir))
    parent = Path(os.path.abspath(input_path)).parent.name
    paths: dict[str, str] = {}
    for source in sources:
        try:
            rel = template.format(track=track, source=source, ext=ext, dir=parent)
        except (ValueError, TypeError, KeyError, IndexError, AttributeError) as exc:
            raise ParameterError(f"bad --filename template {template!r}: {exc}") from None
        if "\0" in rel:
            raise ParameterError(f"output path {rel!r} holds a NUL byte")
        if rel.startswith("/") and not template.startswith("/"):
            # e.g. {track:.0} or {dir} of a file at / gave "": "/speech.wav" is not an escape
            raise ParameterError(
                f"output path {rel!r} has an empty folder name: a --filename placeholder gave "
                "nothing"
            )
        target = Path(os.path.normpath(root / rel))
        if (
            not rel
            or os.path.isabs(rel)
            or ".." in Path(rel).parts
            or not target.is_relative_to(root)
            or target == root
        ):
            raise ParameterError(f"output path {rel!r} would leave the output directory {outdir}")
        long = next((c for c in Path(rel).parts if len(os.fsencode(c)) > 255), None)
        if long is not None:
            raise ParameterError(
                f"output file name {long[:40]!r}... is longer than 255 bytes; "
                "use a shorter --filename"
            )
        if len(os.fsencode(str(target))) >= 4096:
            raise ParameterError("output path is longer than 4096 bytes; use a shorter --filename")
        # Paths are reported as the user wrote OUTDIR (relative stays relative).
        paths[source] = os.path.normpath(os.path.join(outdir, rel))
    return paths


def _file_id(
    path: str | os.PathLike[str] | None = None, *, fd: int | None = None
) -> tuple[int, int] | None:
    """(device, inode) of the file at ``path`` (or open as ``fd``); None when there is none."""
    try:
        st = os.fstat(fd) if path is None and fd is not None else os.stat(path)  # type: ignore[arg-type]
    except (OSError, ValueError, TypeError):
        return None
    return (st.st_dev, st.st_ino)


def same_path(a: str | os.PathLike[str], b: str | os.PathLike[str]) -> bool:
    """Whether two paths name one file (existing or not): the same resolved path, or the same
    device and inode."""
    if os.path.realpath(a) == os.path.realpath(b):
        return True
    ida = _file_id(a)
    return ida is not None and ida == _file_id(b)


def plan_jobs(
    inputs: Sequence[InputItem],
    *,
    sources: Sequence[str],
    outdir: str,
    template: str,
    ext: str,
    options: SeparateOptions | ClusterOptions,
    model: str | None = None,
    overwrite: bool = False,
    plot: bool = False,
    save_model: str | None = None,
    mono: bool = False,
    clip_mode: str = "float",
) -> tuple[list[Job], list[JobRecord]]:
    """Plan one job per input, and the records of inputs that need no work.

    Raises
    ------
    ParameterError
        A template that is malformed, does not end with the format's extension, or maps two
        sources of one input to the same file (the whole command is refused).

    Returns
    -------
    jobs : list of Job
        Inputs to process.
    records : list of JobRecord
        Inputs already finished (``status: "skipped"``), being done by another run
        (``"claimed"``), or refused before any work (``status: "error"``: missing file, output
        collision, an output that is an input of this batch or not a regular file).
    """
    from nmfsep.audio import check_target

    # cluster --n-sources auto: the number of outputs is known only once the file is read;
    # ``sources`` are the most it may write, outputs are renamed into place all together, so
    # any of them existing (without a claim) means the input was done
    auto = isinstance(options, ClusterOptions) and options.n_sources == 0
    check_template(template)
    sample = template.format(
        track="track", source="source", ext="wav" if ext == "same" else ext, dir="dir"
    )
    if Path(sample).suffix.lower().lstrip(".") not in OUTPUT_FORMATS:
        raise ParameterError(
            f"--filename template {template!r} must end with .{{ext}} "
            f"(or .{' or .'.join(OUTPUT_FORMATS)})"
        )
    # every input of the batch, by device and inode: no output may be one of them
    input_ids: dict[tuple[int, int], str] = {}
    for item in inputs:
        if not item.error:
            key = _file_id(item.path)
            if key is not None:
                input_ids.setdefault(key, item.path)
    jobs: list[Job] = []
    records: list[JobRecord] = []
    claimed: dict[str, str] = {}
    for item in inputs:
        if item.error:
            records.append(JobRecord(item.path, "error", error=item.error))
            continue
        try:
            outputs = output_paths(
                outdir,
                template,
                track=item.track,
                input_path=item.path,
                sources=sources,
                ext=same_ext(item.path) if ext == "same" else ext,
            )
        except ParameterError as exc:
            records.append(JobRecord(item.path, "error", error=exc.message))
            continue
        by_path: dict[str, str] = {}
        for name, p in outputs.items():
            if p in by_path:
                raise ParameterError(
                    f"--filename template {template!r} gives sources {by_path[p]!r} and "
                    f"{name!r} of {item.path} the same file {p}; include {{source}} unchanged"
                )
            by_path[p] = name
        first = Path(next(iter(outputs.values())))
        plot_path = str(first.parent / "separation.png") if plot else None
        plots = plot_files(plot_path, cluster=isinstance(options, ClusterOptions))
        clash = next((claimed[p] for p in (*outputs.values(), *plots) if p in claimed), None)
        if clash is not None:
            records.append(
                JobRecord(
                    item.path,
                    "error",
                    error=f"its outputs would overwrite those of {clash}; "
                    'use --filename "{dir}/{track}/{source}.{ext}"',
                )
            )
            continue
        written = list(outputs.values())
        if save_model is not None:
            same = next((p for p in (*written, plot_path) if p and same_path(p, save_model)), None)
            if same is not None:
                raise ParameterError(
                    f"--save-model {save_model} is also the output {same} of {item.path}"
                )
        written += [p for p in (save_model, *plots) if p is not None]
        problem = None
        for p in written:
            other = input_ids.get(_file_id(p) or (-1, -1))
            if other is not None:
                problem = (
                    "an output path is the input itself"
                    if other == item.path or _file_id(other) == _file_id(item.path)
                    else f"output {p} is an input of this batch ({other}); refusing to "
                    "write over it"
                )
                break
            try:
                check_target(p)
            except NmfsepError as exc:
                problem = str(exc)
                break
        if problem is not None:
            records.append(JobRecord(item.path, "error", error=problem))
            continue
        for p in (*outputs.values(), *plots):
            claimed[p] = item.path
        existing = []
        if not overwrite:
            # a model saved with the outputs is one of them, and so are the pictures: a run is
            # done (skipped) when all exist, and none is ever replaced without --overwrite
            mine = [*outputs.values(), *([save_model] if save_model is not None else []), *plots]
            existing = [p for p in mine if os.path.lexists(p)]
            lock = lock_path(written[0])
            every = len(existing) == len(mine) or (auto and not os.path.lexists(lock))
            if existing and every and all(map(os.path.isfile, existing)):
                done = {n: p for n, p in outputs.items() if p in existing}
                records.append(JobRecord(item.path, "skipped", outputs=done))
                continue
            holder = claim_holder(lock) if existing else None
            if holder is not None:  # another run is renaming its outputs right now
                records.append(
                    JobRecord(
                        item.path,
                        "claimed",
                        outputs=outputs,
                        notes=[f"claimed by another run ({holder})"],
                    )
                )
                continue
            if existing and not os.path.lexists(lock):
                # another run's (other model, other sources): never clobbered. (With a stale
                # claim next to them they are ours, from a run killed between two renames:
                # the job is redone.)
                problem = (
                    f"--save-model {save_model} exists; use --overwrite to replace it"
                    if existing == [save_model]
                    else partial_outputs(existing[0])
                )
                records.append(JobRecord(item.path, "error", error=problem))
                continue
        jobs.append(
            Job(
                item.path,
                outputs,
                options,
                model=model,
                plot=plot_path,
                save_model=save_model,
                mono=mono,
                clip_mode=clip_mode,
                # auto, outputs of a killed run next to its stale claim: redo, never skip
                skip_existing=not overwrite and not (auto and existing),
                auto_sources=auto,
            )
        )
    return jobs, records


# --------------------------------------------------------------------------- claims (locks)


def lock_path(output: str | os.PathLike[str]) -> Path:
    """The claim file of the job whose first output is ``output``: ``.{name}.nmfsep-lock``."""
    p = Path(output)
    raw = os.fsencode(p.name)
    if len(raw) > 200:  # the name's limit is 255 bytes; a digest keeps long names apart
        import hashlib

        raw = raw[:180] + b"~" + hashlib.sha1(raw).hexdigest()[:16].encode()
    return p.with_name(f".{os.fsdecode(raw)}{LOCK_SUFFIX}")


def _same_file(fd: int, path: Path) -> bool:
    try:
        a, b = os.fstat(fd), os.lstat(path)
    except OSError:
        return False
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


#: What a claim file holds (written by :func:`_claim`): ``pid host`` and a newline; empty while
#: its writer has created but not yet written it.
_CLAIM_TEXT = re.compile(rb"(\d+ \S+\n)?")


def _read_holder(fd: int) -> str:
    try:
        text = os.pread(fd, 256, 0).decode("utf-8", "replace").split()
    except OSError:
        text = []
    if len(text) >= 2 and text[0].isdigit():
        return f"pid {text[0]} on {text[1]}"
    return "another process"


_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


class _Claim:
    """A held claim: the lock file's descriptor (``flock``-ed) and the directories it made."""

    def __init__(self, path: Path, fd: int | None, made: list[Path]) -> None:
        self.path, self.fd, self.made = path, fd, made

    def release(self) -> None:
        if self.fd is not None:
            if _same_file(self.fd, self.path):
                with contextlib.suppress(OSError):
                    os.unlink(self.path)
            with contextlib.suppress(OSError):
                os.close(self.fd)
            self.fd = None
        for d in self.made:  # directories made for a job that left nothing in them
            with contextlib.suppress(OSError):
                os.rmdir(d)


def _claim(first_output: str) -> _Claim | str:
    """Claim the job whose first output is ``first_output``; the holder's description if
    another live process holds it."""
    from nmfsep.audio import write_error
    from nmfsep.errors import AudioError

    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX: no claims
        return _Claim(lock_path(first_output), None, [])
    lock = lock_path(first_output)
    made: list[Path] = []
    parent = lock.parent
    # Jobs running side by side share parent directories: between looking and making, another
    # job may make one (FileExistsError) or, releasing a claim that left nothing, remove the
    # empty parent it made (FileNotFoundError). Either way: look again and make what is missing.
    for attempt in range(16):
        made = [d for d in made if os.path.lexists(d)]  # ours, unless another job removed it
        missing = [d for d in (parent, *parent.parents) if not os.path.lexists(d)]
        try:
            for d in reversed(missing):
                os.mkdir(d)
                made.insert(0, d)
            break
        except (FileExistsError, FileNotFoundError) as exc:
            if attempt == 15:
                _Claim(lock, None, made).release()
                raise write_error(exc, Path(first_output), AudioError) from None
        except OSError as exc:
            _Claim(lock, None, made).release()
            raise write_error(exc, Path(first_output), AudioError) from None
    for _ in range(8):
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_EXCL | _O_CLOEXEC, 0o644)
        except FileExistsError:
            try:
                fd = os.open(lock, os.O_RDONLY | _O_CLOEXEC | _O_NOFOLLOW)
            except FileNotFoundError:
                continue
            except OSError:
                return "another process"
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _read_holder(fd)
                os.close(fd)
                return holder
            except OSError:  # no flock on this file system: the lock file alone decides
                holder = _read_holder(fd)
                os.close(fd)
                return holder
            # nobody holds it: its process died (the kernel released the flock): take over
            if _same_file(fd, lock):
                with contextlib.suppress(OSError):
                    os.unlink(lock)
            os.close(fd)
            continue
        except OSError as exc:
            _Claim(lock, None, made).release()
            raise write_error(exc, Path(first_output), AudioError) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # ours; only a stale-lock sweep may hold it briefly
        except OSError:
            pass
        if not _same_file(fd, lock):  # swept away as stale in between: try again
            os.close(fd)
            continue
        with contextlib.suppress(OSError):
            os.write(fd, f"{os.getpid()} {socket.gethostname()}\n".encode())
        return _Claim(lock, fd, made)
    return "another process"


def claim_holder(lock: Path) -> str | None:
    """Who holds the claim file ``lock`` (None: nobody, or no such file)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover
        return None
    try:
        fd = os.open(lock, os.O_RDONLY | _O_CLOEXEC | _O_NOFOLLOW)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        return _read_holder(fd)
    finally:
        os.close(fd)
    return None


def cleanup_locks(directories: str | os.PathLike[str] | Iterable[str | os.PathLike[str]]) -> int:
    """Remove the claim files in ``directories`` that no live process holds (a killed run's).

    Each directory is looked at alone (not searched recursively), and only a file named
    ``.{name}.nmfsep-lock`` that holds what a claim holds (``pid host``) is removed: a user's
    file of that name with other content is kept. Returns the number removed; errors
    (permissions, a vanished file) are ignored.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover
        return 0
    if isinstance(directories, (str, os.PathLike)):
        directories = [directories]
    removed = 0
    for root in dict.fromkeys(Path(d) for d in directories):
        try:
            names = [e.name for e in os.scandir(root) if e.is_file(follow_symlinks=False)]
        except OSError:
            continue
        for fname in names:
            if not (fname.startswith(".") and fname.endswith(LOCK_SUFFIX)):
                continue
            path = root / fname
            try:
                fd = os.open(path, os.O_RDONLY | _O_CLOEXEC | _O_NOFOLLOW)
            except OSError:
                continue
            try:
                if _CLAIM_TEXT.fullmatch(os.pread(fd, 512, 0)) is None:
                    continue
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                if _same_file(fd, path):
                    os.unlink(path)
                    removed += 1
            except OSError:
                pass
            finally:
                os.close(fd)
    return removed


# --------------------------------------------------------------------------- running jobs

_MODEL_CACHE: dict[str | None, Any] = {}


def _load_model_cached(path: str | None) -> Any:
    from nmfsep.model import default_model, load_model

    if path not in _MODEL_CACHE:
        _MODEL_CACHE[path] = default_model() if path is None else load_model(path)
    return _MODEL_CACHE[path]


class Cancelled(NmfsepError):
    """The job's parent (the CLI, or a Dask client) is gone: stop, leave nothing."""


#: Checked between blocks; raises :class:`Cancelled` when the job should stop.
_STOP_CHECKS: list[Callable[[], bool]] = []


def _check_stop(*_: Any) -> None:
    for check in _STOP_CHECKS:
        if check():
            raise Cancelled("cancelled: the run that started this job is gone")


def _rollback(paths: Sequence[str], mark: int) -> None:
    """Remove every file of ``paths`` that this job put in place: renamed there by this process
    since ``mark`` (``len(audio.PLACED)`` when the job started). A file that another run
    finished at one of the paths meanwhile is another file, and stays."""
    from nmfsep.audio import PLACED

    mine = set(PLACED[mark:])
    for p in paths:
        now = _file_id(p)
        if now is not None and now in mine:
            with contextlib.suppress(OSError):
                os.unlink(p)


class KeptOld:
    """The files a job may replace (``--overwrite``), kept as hard links until it ends.

    A job that fails late (the ``--save-model`` file, the plot, a full disk on the last source)
    removes the outputs it already put in place; without this, the files they had replaced
    would be gone too, and a failed ``--overwrite`` run would leave the user with neither the
    old outputs nor new ones. :meth:`restore` puts the old files back where the names are free
    again (a file another run put there meanwhile stays); :meth:`discard` drops the links once
    the job succeeded. The links have the name pattern of nmfsep's temporary files
    (:func:`nmfsep.audio.cleanup_temp_files` removes those of a killed run). A file system
    without hard links keeps nothing: the job then behaves as before.
    """

    def __init__(self, paths: Iterable[str | os.PathLike[str]]) -> None:
        from nmfsep.audio import _temp_path

        self.links: list[tuple[str, str]] = []
        for p in dict.fromkeys(os.fspath(p) for p in paths):
            if os.path.islink(p) or not os.path.isfile(p):
                continue
            link = os.fspath(_temp_path(Path(p)))
            try:
                os.link(p, link, follow_symlinks=False)
            except OSError:
                continue
            self.links.append((p, link))

    def restore(self) -> None:
        """Put each kept file back at its name, unless something is there again."""
        for p, link in self.links:
            with contextlib.suppress(OSError):
                os.link(link, p, follow_symlinks=False)  # fails if the name is taken
        self.discard()

    def discard(self) -> None:
        for _, link in self.links:
            with contextlib.suppress(OSError):
                os.unlink(link)
        self.links = []


#: ``progress(input, samples_done, samples_total_or_0)`` after each written piece of a job.
JobProgress = Callable[[str, int, int], None]


def run_job(job: Job, progress: JobProgress | None = None) -> JobRecord:
    """Run one job; never raises for a bad input — the error is in the returned record.

    The job first claims its input (see the module notes); a job that fails leaves none of its
    outputs (those already renamed into place are removed). ``progress`` (in this process
    only) is called as ``progress(job.input, samples_done, samples_total)`` after each written
    piece (total 0 when unknown); an exception it raises stops the job like Ctrl-C.
    """
    t0 = time.perf_counter()
    from nmfsep.audio import PLACED

    written = job.written()
    mark = len(PLACED)
    claim: _Claim | None = None
    kept: KeptOld | None = None
    try:
        try:
            held = _claim(written[0]) if job.claim else None
            if isinstance(held, str):
                record = JobRecord(
                    job.input,
                    "claimed",
                    outputs=dict(job.outputs),
                    notes=[f"claimed by another run ({held})"],
                )
            else:
                claim = held
                done = {n: p for n, p in job.outputs.items() if os.path.isfile(p)}
                if job.skip_existing and done and (job.auto_sources or done == job.outputs):
                    record = JobRecord(job.input, "skipped", outputs=done)
                else:
                    kept = KeptOld(written)
                    record = _run_job(job, progress)
        except NmfsepError as exc:
            # The error names the input; name another file (an output, ...) in the message.
            about_input = exc.path is None or os.path.abspath(exc.path) == os.path.abspath(
                job.input
            )
            record = JobRecord(job.input, "error", error=exc.message if about_input else str(exc))
        except MemoryError:
            record = JobRecord(job.input, "error", error="out of memory")
        except Exception as exc:  # a bug, not a bad input: still one line per file, batch goes on
            if isinstance(exc, OSError) and exc.filename is not None:  # the OS refused a path
                from nmfsep.audio import os_error

                err = os_error(exc)
                about_input = os.path.abspath(err.path or "") == os.path.abspath(job.input)
                record = JobRecord(
                    job.input, "error", error=err.message if about_input else str(err)
                )
            else:
                where = traceback.extract_tb(exc.__traceback__)[-1]
                record = JobRecord(
                    job.input,
                    "error",
                    error=f"internal error: {type(exc).__name__}: {exc} "
                    f"({Path(where.filename).name}:{where.lineno}); please report it",
                )
        if record.status == "error":
            _rollback(written, mark)
            if kept is not None:
                kept.restore()
    except BaseException:  # Ctrl-C / SIGTERM in this process: nothing half-done is left
        _rollback(written, mark)
        if kept is not None:
            kept.restore()
        raise
    finally:
        if kept is not None:  # (a no-op after restore)
            kept.discard()
        if claim is not None:
            claim.release()
    if record.error is not None:  # one line, whatever the exception said
        record.error = " ".join(str(record.error).split())
    record.seconds = round(time.perf_counter() - t0, 3)
    if record.status == "ok" and record.duration:  # audio seconds per wall second
        record.realtime = round(record.duration / max(record.seconds, 1e-6), 2)
    return record


def same_ext(path: str) -> str:
    """The extension ``--format same`` gives the outputs of ``path``."""
    ext = Path(path).suffix.lower().lstrip(".")
    return ext if ext in SAME_FORMATS else "wav"


def _subtypes(job: Job) -> dict[str, str]:
    from nmfsep.audio import audio_info
    from nmfsep.pipes import needs_ffmpeg

    if job.subtype is not None:
        return dict.fromkeys(job.outputs, job.subtype)
    # decoded by ffmpeg (m4a, ...): lossy sources, 16 bits are plenty
    subtype = "PCM_16" if needs_ffmpeg(job.input) else audio_info(job.input).subtype
    return {
        name: output_subtype(subtype, Path(path).suffix.lower().lstrip("."))
        for name, path in job.outputs.items()
    }


def _run_job(job: Job, progress: JobProgress | None = None) -> JobRecord:
    from nmfsep import streaming

    subtypes = _subtypes(job)
    notes: list[str] = []

    def on_clip(plan: Any) -> None:
        notes.append(plan.describe())

    if job.plot is not None:
        return _run_job_in_memory(job, subtypes, notes, on_clip)
    model = None
    replace = _may_replace(job)

    def on_piece(done: int, total: int) -> None:
        _check_stop()
        if progress is not None:
            progress(job.input, done, total)

    common: dict[str, Any] = {
        "mono": job.mono,
        "subtypes": subtypes,
        "n_threads": job.threads,
        "progress": on_piece,
        "clip_mode": job.clip_mode,
        "protect": [job.input],
        "on_clip": on_clip,
        "start": job.start,
        "duration": job.duration,
        "replace": replace,
    }
    if progress is not None:
        progress(job.input, 0, 0)  # started (the first piece may take a while)
    if isinstance(job.options, ClusterOptions):
        result, model = streaming.cluster_file(
            job.input,
            job.outputs,
            options=job.options,
            allow_silent=job.save_model is None,
            **common,
        )
    else:
        result = streaming.separate_file(
            job.input, job.outputs, _load_model_cached(job.model), options=job.options, **common
        )
    if model is not None and job.save_model is not None:
        model.save(job.save_model, protect=[job.input], replace=replace)
    _drop_unwritten(job, result.outputs)
    return JobRecord(
        job.input,
        "ok",
        outputs=dict(result.outputs),
        duration=round(result.n_samples / result.sr, 3),
        settings=result.settings,
        model=job.save_model if model is not None else None,
        notes=notes or None,
    )


def _may_replace(job: Job) -> bool:
    """Whether the job may replace files at its paths: with --overwrite, or when some were
    there when it started (a killed run's outputs next to its stale claim, redone); else a
    file that another run put there meanwhile is kept and the job fails."""
    return not job.skip_existing or any(os.path.lexists(p) for p in job.written())


def _run_job_in_memory(
    job: Job, subtypes: dict[str, str], notes: list[str], on_clip: Callable[[Any], None]
) -> JobRecord:
    """``--plot``: the whole file in memory (the picture needs every frame), same engine."""
    replace = _may_replace(job)  # before anything is written
    import numpy as np

    from nmfsep.audio import load_audio, write_audio
    from nmfsep.plotting import plot_model, plot_separation
    from nmfsep.separation import cluster_separate, separate

    assert job.plot is not None
    y, sr = load_audio(job.input, mono=job.mono, offset=job.start, duration=job.duration)
    model = None
    if isinstance(job.options, ClusterOptions):
        result, model = cluster_separate(
            y, sr, options=job.options, allow_silent=job.save_model is None
        )
    else:
        result = separate(y, sr, _load_model_cached(job.model), options=job.options)
    # one decision for all the sources of the input (same gain: they still sum to the mixture)
    peak = max(
        (float(np.max(np.abs(y), initial=0.0)) for n, y in result.sources.items()
         if n in job.outputs),
        default=0.0,
    )  # fmt: skip
    said: list[Any] = []
    written = {n: p for n, p in job.outputs.items() if n in result.sources}
    for name, path in written.items():
        write_audio(
            path,
            result.sources[name],
            sr,
            subtype=subtypes[name],
            clip_mode=job.clip_mode,
            peak=peak,
            protect=[job.input],
            on_clip=lambda plan: said.append(plan),
            replace=replace,
        )
    if said:
        on_clip(said[0])
    if model is not None and job.save_model is not None:
        model.save(job.save_model, protect=[job.input], replace=replace)
    plot_separation(y, sr, result, job.plot, title=Path(job.input).name, scale=job.plot_scale,
                    replace=replace)  # fmt: skip
    if model is not None:  # the learned bases, one colour per cluster
        plot_model(model, Path(job.plot).with_name("bases.png"), scale=job.plot_scale,
                   replace=replace)  # fmt: skip
    _drop_unwritten(job, written)
    return JobRecord(
        job.input,
        "ok",
        outputs=written,
        duration=round(y.shape[1] / sr, 3),
        settings=result.settings,
        plot=job.plot,
        model=job.save_model if model is not None else None,
        notes=notes or None,
    )


def _drop_unwritten(job: Job, written: dict[str, str]) -> None:
    """``--n-sources auto`` found fewer sources than planned: remove the planned outputs beyond
    them that an earlier run of this input left (with ``--overwrite``), so that the directory
    holds one run's sources."""
    if not job.auto_sources:
        return
    for name, path in job.outputs.items():
        if name not in written and os.path.isfile(path):
            with contextlib.suppress(OSError):
                os.unlink(path)


def output_subtype(input_subtype: str, ext: str) -> str:
    """Sample format of an output: the input's where the output format has it (so a 16-bit
    input gives 16-bit outputs), else the nearest lossless one; the codec of lossy formats."""
    import soundfile as sf

    if ext == "flac":
        return "PCM_24" if input_subtype in ("PCM_24", "PCM_32", "FLOAT", "DOUBLE") else "PCM_16"
    lossy = {"ogg": "VORBIS", "oga": "VORBIS", "opus": "OPUS", "mp3": "MPEG_LAYER_III"}
    if ext in lossy:
        return lossy[ext]
    if input_subtype in ("PCM_16", "PCM_24", "PCM_32", "FLOAT", "DOUBLE"):
        return input_subtype
    container = {"aif": "AIFF", "aiff": "AIFF", "w64": "W64", "rf64": "RF64", "caf": "CAF"}
    fmt = container.get(ext, "AU" if ext == "au" else None)
    if fmt is not None and input_subtype and sf.check_format(fmt, input_subtype):
        return input_subtype
    return "FLOAT"


# --------------------------------------------------------------------------- worker processes


def _die_with_parent(parent_pid: int) -> None:
    """Make this (worker) process die when ``parent_pid`` does, whatever kills the parent.

    Linux: ``prctl(PR_SET_PDEATHSIG, SIGKILL)`` (the kernel kills us). Everywhere: a daemon
    thread polls ``os.getppid()`` and exits the process when the parent changed (re-parented to
    init or a subreaper), which also covers a parent that died before the ``prctl``.
    """
    import signal
    import sys

    if sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            pr_set_pdeathsig = 1
            libc.prctl(pr_set_pdeathsig, int(signal.SIGKILL), 0, 0, 0)
        except (OSError, AttributeError):  # pragma: no cover - no libc prctl
            pass
    if os.getppid() != parent_pid:  # already orphaned
        os._exit(1)

    def watch() -> None:
        while True:
            time.sleep(0.5)
            if os.getppid() != parent_pid:
                os._exit(1)

    threading.Thread(target=watch, name="nmfsep-parent-watch", daemon=True).start()
    _STOP_CHECKS.append(lambda: os.getppid() != parent_pid)


def _init_worker(parent_pid: int | None = None) -> None:
    _die_with_parent(os.getppid() if parent_pid is None else parent_pid)
    # One BLAS thread per worker: N processes on N cores, no oversubscription.
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)
    # The parent handles Ctrl-C: workers must not print KeyboardInterrupt tracebacks.
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # The parent stops its workers with SIGTERM: a worker between two renames must still roll
    # its job back (run_job's BaseException path), not die with half of the outputs in place
    signal.signal(signal.SIGTERM, _stop_worker)


def _stop_worker(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def run_jobs(
    jobs: Sequence[Job],
    *,
    n_jobs: int = 1,
    scheduler: str | None = None,
    on_done: Callable[[JobRecord], None] | None = None,
    progress: JobProgress | None = None,
) -> list[JobRecord]:
    """Run jobs in this process (``n_jobs=1`` or one job), a local process pool, or on Dask.

    Parameters
    ----------
    jobs : sequence of Job
    n_jobs : int
        Worker processes for a local run. One job alone runs in this process with ``n_jobs``
        block threads instead.
    scheduler : str, optional
        Address of a Dask distributed scheduler (``tcp://host:8786``); needs the
        ``distributed`` extra. Relative paths of the jobs are made absolute here (in the
        parent), so that workers resolve them as the user meant; records name them as given.
    on_done : callable, optional
        Called with each record as soon as its job finishes (for progress reports).
    progress : callable, optional
        ``progress(input, samples_done, samples_total)`` within each job, for jobs run in this
        process only (``n_jobs=1`` or one job); pool and Dask workers report through
        ``on_done`` alone.

    Returns
    -------
    list of JobRecord
        One record per job, in the order of ``jobs``.
    """
    if not jobs:
        return []
    results: dict[int, JobRecord] = {}

    def done(i: int, record: JobRecord) -> None:
        results[i] = record
        if on_done is not None:
            on_done(record)

    if scheduler is not None:
        for i, record in _run_distributed(jobs, scheduler):
            done(i, record)
    elif n_jobs <= 1 or len(jobs) == 1:
        for i, job in enumerate(jobs):
            done(i, run_job(replace(job, threads=max(1, n_jobs)), progress))
    else:
        for i, record in _run_pool(jobs, min(n_jobs, len(jobs))):
            done(i, record)
    return [results[i] for i in range(len(jobs))]


def _run_pool(jobs: Sequence[Job], n_jobs: int) -> Iterator[tuple[int, JobRecord]]:
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor, as_completed

    # "spawn" keeps workers independent of the parent's threads and BLAS state.
    context = mp.get_context("spawn")
    pool = ProcessPoolExecutor(
        n_jobs, mp_context=context, initializer=_init_worker, initargs=(os.getpid(),)
    )
    try:
        futures = {pool.submit(run_job, job): i for i, job in enumerate(jobs)}
        for future in as_completed(futures):
            yield futures[future], future.result()
    except BaseException:
        # Ctrl-C (or any error): stop now. Workers ignore SIGINT, and shutting the pool down
        # normally would wait for the running jobs to finish: terminate them instead. A killed
        # worker leaves at most a hidden temporary file, removed by the next run.
        _terminate_pool(pool)
        raise
    pool.shutdown(wait=True)


def _terminate_pool(pool: Any) -> None:
    processes = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        if process.is_alive():
            process.terminate()
    for process in processes:
        process.join(timeout=5)
        if process.is_alive():  # pragma: no cover - a worker stuck in a system call
            process.kill()
            process.join(timeout=5)


def _absolute(job: Job) -> Job:
    def a(p: str | None) -> str | None:
        return None if p is None else os.path.abspath(p)

    return replace(
        job,
        input=os.path.abspath(job.input),
        outputs={n: os.path.abspath(p) for n, p in job.outputs.items()},
        model=a(job.model),
        plot=a(job.plot),
        save_model=a(job.save_model),
    )


def _dask_cancelled() -> bool:
    """In a Dask task: True once the task was cancelled or released (its client is gone)."""
    try:
        from distributed import get_worker
        from distributed.worker import thread_state

        worker = get_worker()
        task = worker.state.tasks.get(thread_state.key)
    except Exception:  # not in a Dask task, or another distributed version: keep going
        return False
    return task is None or task.state in ("cancelled", "released", "forgotten")


def _run_job_dask(job: Job) -> JobRecord:
    """:func:`run_job` on a Dask worker: stops between blocks once the task is cancelled."""
    _STOP_CHECKS.append(_dask_cancelled)
    try:
        return run_job(job)
    finally:
        with contextlib.suppress(ValueError):
            _STOP_CHECKS.remove(_dask_cancelled)


def _run_distributed(jobs: Sequence[Job], address: str) -> Iterator[tuple[int, JobRecord]]:
    try:
        from distributed import Client, as_completed
    except ImportError:
        raise NmfsepError(
            "--scheduler needs the 'distributed' extra: pip install 'nmfsep[distributed]'"
        ) from None
    try:
        client = Client(address, timeout="10s")
    except (OSError, TimeoutError) as exc:
        raise NmfsepError(f"cannot connect to the Dask scheduler at {address}: {exc}") from None
    except (ValueError, TypeError) as exc:  # distributed's parse of the address
        raise NmfsepError(
            f"--scheduler {address!r} is not a scheduler address like tcp://host:8786 ({exc})"
        ) from None
    with client:
        futures = client.map(_run_job_dask, [_absolute(j) for j in jobs], pure=False)
        index = {f.key: i for i, f in enumerate(futures)}
        try:
            for future in as_completed(futures):
                i = index[future.key]
                record = future.result()
                job = jobs[i]  # name the files as the user gave them
                record = replace(
                    record,
                    input=job.input,
                    outputs=dict(job.outputs) if record.outputs else {},
                    plot=job.plot if record.plot else None,
                    model=job.save_model if record.model else None,
                )
                yield i, record
        except BaseException:
            client.cancel(futures, force=True)
            raise


def summarize(records: Sequence[JobRecord], *, seconds: float) -> dict[str, Any]:
    """Counts of a batch: total, ok, skipped, claimed, failed, wall seconds, audio seconds."""
    return {
        "total": len(records),
        "ok": sum(r.status == "ok" for r in records),
        "skipped": sum(r.status == "skipped" for r in records),
        "claimed": sum(r.status == "claimed" for r in records),
        "failed": sum(r.status == "error" for r in records),
        "seconds": round(seconds, 3),
        "audio_seconds": round(sum(r.duration for r in records), 3),
    }
