"""Files of any length through the engine, block by block, in bounded memory.

:func:`separate_file` reads a file in chunks, pushes them through a
:class:`~nmfsep.engine.Separator` and appends each source's final samples to its output file as
they come; :func:`cluster_file` first passes over the file once to sample frames for the
mixture's own model (:mod:`nmfsep.unsupervised`), then separates with it the same way. Memory
depends on the block size (:func:`~nmfsep.engine.auto_block_frames`), never on the file's length;
the outputs are those of :func:`nmfsep.separation.separate` on the same samples (one engine).

Outputs are written at the input's rate, channel count and length, each to a hidden temporary
file in its destination directory (the naming of :func:`nmfsep.audio.atomic_open`, so that
:func:`nmfsep.audio.cleanup_temp_files` removes what a killed run leaves), renamed at the end.
"""

from __future__ import annotations

import contextlib
import os
import weakref
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from nmfsep.engine import Separator
from nmfsep.errors import AudioError, NmfsepError, ParameterError
from nmfsep.model import NMFModel
from nmfsep.options import ClusterOptions, SeparateOptions, options_from
from nmfsep.pipes import InputStream, OutputStream, ffmpeg_reader, needs_ffmpeg, spool

__all__ = ["StreamResult", "cluster_file", "separate_file"]

PathLike = str | os.PathLike[str]
Source = Path | InputStream
Progress = Callable[[int, int], None]
"""``progress(samples_done, samples_total_or_0)`` after each written piece."""


@dataclass
class StreamResult:
    """What a streamed separation did.

    Attributes
    ----------
    outputs : dict of str to str
        Path written for each source.
    sr : int
        Sample rate of the input and of the outputs.
    n_samples : int
        Length of the input (and of each output) in samples.
    settings : dict
        JSON-able settings of the engine (:attr:`~nmfsep.engine.Separator.settings`).
    """

    outputs: dict[str, str]
    sr: int
    n_samples: int
    settings: dict[str, Any]


# ------------------------------------------------------------------------------ reading


def _chunks(
    f: Any,
    path: Path,
    frames: int,
    *,
    mono: bool,
    span: tuple[int, int | None] = (0, None),
    at_end: Callable[[], bool] | None = None,
) -> Iterator[np.ndarray]:
    """Samples of an open sound file, (channels, n) float32 chunks of ``frames``.

    ``span = (start, count)``: skip ``start`` frames first (a seek when the file can, else by
    reading), then stop after ``count`` frames (None: at the end). ``at_end()`` (streams): True
    once every byte was read -- a FLAC stream of unknown length then ends with a decoder error,
    which is its end (the frames decoded before it are kept)."""
    import soundfile as sf

    from nmfsep.audio import _sf_detail

    start, left = span
    if start:
        try:
            # a stream (``at_end`` given) is skipped by reading: its header's length may be
            # "unknown" (nmfsep.pipes.StreamReader.stream_wav), and reading finds its end
            if f.seekable() and f.frames < _UNKNOWN_FRAMES and at_end is None:
                if start >= f.frames:
                    raise AudioError(
                        f"--start is past the end of the input ({f.frames / f.samplerate:.3f} s)",
                        path=path,
                    )
                f.seek(start)
            else:
                skip = start
                while skip:
                    got = f.read(min(skip, 1 << 16), dtype="float32", always_2d=True).shape[0]
                    if got == 0:
                        raise AudioError("--start is past the end of the input", path=path)
                    skip -= got
        except (sf.SoundFileError, RuntimeError, ValueError, OverflowError) as exc:
            raise AudioError(
                f"audio data is corrupt or truncated ({_sf_detail(exc)})", path=path
            ) from None
    while True:
        want = frames if left is None else min(frames, left)
        if want <= 0:
            return
        buf = np.full((want, int(f.channels)), np.nan, np.float32) if at_end else None
        try:
            block = f.read(want, dtype="float32", always_2d=True, out=buf)
        except (sf.SoundFileError, RuntimeError, ValueError, OverflowError) as exc:
            if buf is not None and at_end is not None and at_end():
                bad = np.isnan(buf).any(axis=1)
                block = buf[: int(np.argmax(bad)) if bad.any() else want]
                if block.shape[0]:
                    yield np.ascontiguousarray(
                        block.mean(axis=1, keepdims=True, dtype=np.float32).T if mono else block.T
                    )
                return
            raise AudioError(
                f"audio data is corrupt or truncated ({_sf_detail(exc)})", path=path
            ) from None
        if block.shape[0] == 0:
            return
        if not np.isfinite(block).all():
            raise AudioError("contains NaN or infinite samples", path=path)
        if mono:
            block = block.mean(axis=1, keepdims=True, dtype=np.float32)
        yield np.ascontiguousarray(block.T)
        if left is not None:
            left -= block.shape[0]
        if block.shape[0] < want:
            return


#: libsndfile's frame count of a stream whose length the header does not give (or more).
_UNKNOWN_FRAMES = 1 << 40


def _span(sr: int, start: float, duration: float | None) -> tuple[int, int | None]:
    """Frames ``(start, count)`` of a time range in seconds (at most 2**62 frames each: a
    start of 1e306 s is past any end, a duration of 1e306 s reads to it)."""
    cap = float(1 << 62)
    count = None if duration is None else max(1, round(min(duration * sr, cap)))
    return round(min(start * sr, cap)), count


class _StreamWriters:
    """Outputs written to pipes (:class:`nmfsep.pipes.OutputStream`): no temporary file, no
    rename; integer samples over full scale are clipped (nothing can be rewritten later)."""

    def __init__(
        self,
        stack: contextlib.ExitStack,
        outputs: Mapping[str, Any],
        sr: int,
        channels: int,
        subtypes: Mapping[str, str | None],
    ) -> None:
        import soundfile as sf

        from nmfsep.audio import _FLOAT_SUBTYPES, _sf_detail

        self.files: list[Any] = []
        self.targets: list[Any] = []
        self.clip: list[bool] = []
        for name, target in outputs.items():
            subtype = (subtypes.get(name) or sf.default_subtype(target.format)).upper()
            if not sf.check_format(target.format, subtype):
                raise ParameterError(f"subtype {subtype} cannot be written as {target.format}")
            try:
                out = target.open(sr, channels, subtype)
            except OSError as exc:
                raise _write_error(exc) from None
            except (sf.SoundFileError, RuntimeError, ValueError, TypeError) as exc:
                raise AudioError(f"cannot write audio to stdout ({_sf_detail(exc)})") from None
            # last in, first out: the check runs after the close (its final writes)
            stack.callback(self._checked, target)
            stack.callback(out.close)
            self.files.append(out)
            self.targets.append(target)
            self.clip.append(subtype not in _FLOAT_SUBTYPES)

    @staticmethod
    def _checked(target: Any) -> None:
        try:
            target.check()
        except OSError as exc:
            raise _write_error(exc) from None

    def write(self, y: np.ndarray) -> None:
        for i, out in enumerate(self.files):
            block = np.ascontiguousarray(y[i].T)
            if self.clip[i]:
                np.clip(block, -1.0, 1.0, out=block)
            try:
                out.write(block)
            except OSError as exc:
                raise _write_error(exc) from None
            self._checked(self.targets[i])


def _write_error(exc: OSError) -> AudioError:
    """The error of a failed write to standard output (a closed pipe: stdout is detached, so
    that the interpreter's last flush does not fail again)."""
    from nmfsep.pipes import detach_stdout

    if isinstance(exc, BrokenPipeError):
        detach_stdout()
        return AudioError("standard output was closed by the reader")
    return AudioError(f"cannot write audio to stdout ({exc.strerror or exc})")


# ------------------------------------------------------------------------------ writing


class _Writers:
    """One atomic, chunk-by-chunk sound-file writer per output: all renamed together at the end.

    Each output is written to a hidden temporary file (:func:`nmfsep.audio.atomic_open`: the
    target is checked first, so a FIFO, device or directory there, or one of ``protect``, is
    refused before any sample is written). The temporary files are renamed when the stack
    closes without error; if anything fails once one of them was renamed (the disk fills while
    the second is synced), those already renamed are removed again: an input whose outputs
    could not all be written has none.

    Clipping: integer outputs are written directly while no sample is over full scale. At the
    first block where one is (in any output), every integer output switches to a 32-bit float
    spool (a temporary file of the same naming, the samples so far copied into it), and at the
    end one :func:`nmfsep.audio.plan_clip` decision for the largest peak of all the outputs is
    applied to all of them (``float``: 32-bit float WAV, FLAC rescaled; ``rescale``: one gain,
    so the sources still sum to the scaled mixture). ``clamp`` clips each block as it comes.
    ``on_clip(plan)`` is called once when anything was done.
    """

    def __init__(
        self,
        stack: contextlib.ExitStack,
        outputs: Mapping[str, PathLike],
        sr: int,
        channels: int,
        subtypes: Mapping[str, str | None],
        *,
        clip_mode: str = "float",
        protect: Any = None,
        on_clip: Callable[[Any], Any] | None = None,
        replace: bool = True,
    ) -> None:
        import soundfile as sf

        from nmfsep.audio import (
            _FLOAT_SUBTYPES,
            CLIP_MODES,
            _resolve_format,
            _sf_detail,
            atomic_open,
            no_peak_chunk,
            write_error,
        )

        if clip_mode not in CLIP_MODES:
            raise NmfsepError(
                f"clip_mode must be one of {', '.join(CLIP_MODES)}, got {clip_mode!r}"
            )
        self.stack, self.sr, self.channels = stack, sr, channels
        self.clip_mode, self.on_clip = clip_mode, on_clip
        self.files: list[Any] = []
        self.handles: list[Any] = []
        self.temps: list[tuple[int, int]] = []
        self.formats: list[tuple[str, str]] = []
        self.clip: list[bool] = []
        self.paths: list[Path] = []
        self.spools: list[tuple[Any, Path] | None] = []
        self.peak = 0.0
        self.frames = 0
        self.said = False
        stack.push(self._rollback)  # exits last: after every rename
        for name, path in outputs.items():
            dest = Path(path)
            fmt, subtype = _resolve_format(dest, None, subtypes.get(name))
            try:
                fh = stack.enter_context(atomic_open(dest, protect=protect, replace=replace))
            except OSError as exc:
                raise write_error(exc, dest, AudioError) from None
            st = os.fstat(fh.fileno())
            try:
                out = no_peak_chunk(
                    sf.SoundFile(fh, "w", samplerate=sr, channels=channels, format=fmt,
                                 subtype=subtype)
                )  # fmt: skip
            except (sf.SoundFileError, RuntimeError, ValueError, TypeError) as exc:
                raise AudioError(f"cannot write audio ({_sf_detail(exc)})", path=dest) from None
            # Closed (header finalised) before atomic_open flushes and renames: LIFO order.
            stack.callback(self._close, len(self.files))
            self.files.append(out)
            self.handles.append(fh)
            self.temps.append((st.st_dev, st.st_ino))
            self.formats.append((fmt, subtype))
            self.clip.append(subtype not in _FLOAT_SUBTYPES)
            self.paths.append(dest)
            self.spools.append(None)

    def _close(self, i: int) -> None:
        self.files[i].close()

    def _rollback(self, exc_type: Any, exc: Any, tb: Any) -> bool:
        if exc_type is not None:
            for dest, temp in zip(self.paths, self.temps, strict=True):
                with contextlib.suppress(OSError):
                    st = os.lstat(dest)
                    if (st.st_dev, st.st_ino) == temp:  # ours, already renamed into place
                        os.unlink(dest)
        return False

    def _say(self, plan: Any) -> None:
        if not self.said and plan.action != "none" and self.on_clip is not None:
            self.said = True
            self.on_clip(plan)

    def _spool(self) -> None:
        """Move every integer output to a float spool (the samples so far copied into it)."""
        import soundfile as sf

        from nmfsep.audio import _GuardedFile, _temp_path, write_error

        for i, dest in enumerate(self.paths):
            if not self.clip[i] or self.spools[i] is not None:
                continue
            self.files[i].close()  # header of what was written so far
            tmp = _temp_path(dest)
            try:
                fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
            except OSError as exc:
                raise write_error(exc, dest, AudioError) from None
            spool = _GuardedFile(fd, "r+", closefd=True)
            self.stack.callback(self._drop_spool, spool, tmp)
            self.spools[i] = (spool, tmp)
            out = sf.SoundFile(
                spool, "w", samplerate=self.sr, channels=self.channels, format="W64",
                subtype="FLOAT",
            )  # fmt: skip
            fh = self.handles[i]
            if self.frames:  # (an encoder may not even have written a header yet)
                fh.seek(0)
                with sf.SoundFile(fh, "r") as previous:
                    for block in previous.blocks(1 << 16, dtype="float32", always_2d=True):
                        out.write(block)
            self._check(spool, dest)
            self.files[i] = out

    @staticmethod
    def _drop_spool(spool: Any, tmp: Path) -> None:
        with contextlib.suppress(OSError):
            spool.close()
        with contextlib.suppress(OSError):
            os.unlink(tmp)

    @staticmethod
    def _check(fh: Any, dest: Path) -> None:
        from nmfsep.audio import write_error

        if getattr(fh, "failure", None) is not None:
            raise write_error(fh.failure, dest, AudioError)

    def write(self, y: np.ndarray) -> None:
        """Append ``y`` (n_outputs, channels, n) to the outputs."""
        import soundfile as sf

        from nmfsep.audio import _sf_detail, plan_clip, write_error

        if y.shape[-1] == 0:
            return
        peak = float(np.max(np.abs(y), initial=0.0))
        self.peak = max(self.peak, peak)
        if peak > 1.0 and any(self.clip):
            if self.clip_mode == "clamp":
                fmt, subtype = self.formats[self.clip.index(True)]
                self._say(plan_clip(peak, format=fmt, subtype=subtype, clip_mode="clamp"))
            else:
                self._spool()
        for i, out in enumerate(self.files):
            block = np.ascontiguousarray(y[i].T)
            if self.clip[i] and self.spools[i] is None:
                np.clip(block, -1.0, 1.0, out=block)
            spool = self.spools[i]
            target = self.handles[i] if spool is None else spool[0]
            try:
                out.write(block)
            except OSError as exc:
                raise write_error(exc, self.paths[i], AudioError) from None
            except (sf.SoundFileError, RuntimeError, ValueError, AssertionError) as exc:
                # a write the guarded file refused (a full disk) is a short write, which
                # soundfile asserts against: the remembered OSError says what happened
                self._check(target, self.paths[i])
                raise AudioError(
                    f"cannot write audio ({_sf_detail(exc)})", path=self.paths[i]
                ) from None
            self._check(target, self.paths[i])
        self.frames += y.shape[-1]

    def finish(self) -> None:
        """Apply the clipping decision to the spooled outputs, then finalise and sync every
        output, so that the renames at the end follow each other closely (a kill between two
        renames is what leaves an input with some of its outputs)."""
        from nmfsep.audio import write_error

        self._unspool()
        for i, out in enumerate(self.files):
            out.close()
            self._check(self.handles[i], self.paths[i])
            try:
                self.handles[i].flush()
                os.fsync(self.handles[i].fileno())
            except OSError as exc:
                raise write_error(exc, self.paths[i], AudioError) from None

    def _unspool(self) -> None:
        import soundfile as sf

        from nmfsep.audio import no_peak_chunk, plan_clip

        spooled = [i for i, s in enumerate(self.spools) if s is not None]
        if not spooled:
            return
        fmt, subtype = self.formats[spooled[0]]
        first = plan_clip(self.peak, format=fmt, subtype=subtype, clip_mode=self.clip_mode)
        self._say(first)
        for i in spooled:
            spool, _ = self.spools[i]  # type: ignore[misc]
            self.files[i].close()
            self._check(spool, self.paths[i])
            fmt, subtype = self.formats[i]
            plan = plan_clip(self.peak, format=fmt, subtype=subtype, clip_mode=self.clip_mode)
            fh = self.handles[i]
            fh.seek(0)
            fh.truncate()
            out = no_peak_chunk(
                sf.SoundFile(fh, "w", samplerate=self.sr, channels=self.channels, format=fmt,
                             subtype=plan.subtype)
            )  # fmt: skip
            self.files[i] = out
            gain = np.float32(plan.gain)
            integer = plan.subtype == subtype and self.clip[i]
            spool.seek(0)
            with sf.SoundFile(spool, "r") as r:
                for block in r.blocks(1 << 16, dtype="float32", always_2d=True):
                    if plan.gain != 1.0:
                        block *= gain
                    if integer:
                        np.clip(block, -1.0, 1.0, out=block)
                    out.write(block)


# ------------------------------------------------------------------------------ the loops


def _open(src: Source, stack: contextlib.ExitStack, mono: bool) -> tuple[Any, int, int]:
    from nmfsep.audio import _check_header, _open_for_reading

    if isinstance(src, InputStream):
        stack.callback(src.close)
        f = stack.enter_context(src.open())
        _check_header(int(f.samplerate), int(f.channels), Path(src.name))
    else:
        f = stack.enter_context(_open_for_reading(src))
        if f.frames >= _UNKNOWN_FRAMES or f.frames < 0:
            # a FLAC written to a pipe: no length in the header, and libsndfile reports its end
            # as a decoder error. Read it through a file object, so that the end can be told.
            import soundfile as sf

            fh = stack.enter_context(open(src, "rb"))
            size = os.fstat(fh.fileno()).st_size
            f = stack.enter_context(sf.SoundFile(fh))
            _AT_END[f] = lambda: fh.tell() >= size
    return f, int(f.samplerate), 1 if mono else int(f.channels)


#: ``at_end()`` of the open files of unknown length (see :func:`_chunks`).
_AT_END: weakref.WeakKeyDictionary[Any, Callable[[], bool]] = weakref.WeakKeyDictionary()


def _source(path: PathLike | InputStream) -> Source:
    """A path, a stream, or (for formats libsndfile does not read) ffmpeg's decoding of it."""
    if isinstance(path, InputStream):
        return path
    if needs_ffmpeg(path):
        return ffmpeg_reader(path)
    return Path(path)


def _name(src: Source) -> Path:
    return Path(src.name) if isinstance(src, InputStream) else src


def _check_outputs(outputs: object) -> None:
    """``outputs`` must map source names to targets: a bare path would otherwise be read as
    its characters ("no estimate for source(s) /, a, ...")."""
    if not isinstance(outputs, Mapping):
        raise ParameterError(
            "outputs must map source names to output paths, e.g. {'speech': 'speech.wav'}; "
            f"got {type(outputs).__name__}"
        )
    bad = [k for k in outputs if not isinstance(k, str)]
    if bad:
        raise ParameterError(f"output names must be source names (str), got {bad[0]!r}")


def _through(
    separator: Separator,
    src: Source,
    outputs: Mapping[str, PathLike | OutputStream],
    *,
    mono: bool,
    subtypes: Mapping[str, str | None] | None,
    progress: Progress | None,
    clip_mode: str = "float",
    protect: Any = None,
    on_clip: Callable[[Any], Any] | None = None,
    opened: Any = None,
    start: float = 0.0,
    duration: float | None = None,
    replace: bool = True,
) -> StreamResult:
    """Push the file's samples through ``separator``; write the outputs it names (files, or
    :class:`~nmfsep.pipes.OutputStream`). ``opened``: the input already open (a stream can be
    opened once only). ``replace=False``: an output another run put in place meanwhile is
    kept, and this run fails (:func:`nmfsep.audio.atomic_open`)."""
    names = list(separator.names)
    missing = [n for n in outputs if n not in names]
    if missing:
        raise NmfsepError(f"no estimate for source(s) {', '.join(sorted(missing))}")
    order = [n for n in names if n in outputs]
    index = [names.index(n) for n in order]
    plan = separator.plan
    # enough samples per read that every thread has a block to work on
    chunk = max(1 << 14, plan.block_frames * plan.config.hop_length * separator.n_threads)
    with contextlib.ExitStack() as stack:
        f, sr, _ = _open(src, stack, mono) if opened is None else (opened, opened.samplerate, 0)
        span = _span(sr, start, duration)
        total = int(f.frames) if 0 < f.frames < _UNKNOWN_FRAMES else 0
        total = max(0, total - span[0]) if total else 0
        if span[1] is not None:
            total = min(total, span[1]) if total else span[1]
        writers: _Writers | None = None
        streams: _StreamWriters | None = None
        to_file = [i for i, n in zip(index, order, strict=True) if not _is_stream(outputs[n])]
        to_pipe = [i for i, n in zip(index, order, strict=True) if _is_stream(outputs[n])]
        done = 0

        def write(y: np.ndarray) -> None:
            # outputs are created with the first samples: a file that fails first leaves nothing
            nonlocal writers, streams, done
            if streams is None and to_pipe and y.shape[-1]:
                piped = {n: outputs[n] for n in order if _is_stream(outputs[n])}
                streams = _StreamWriters(stack, piped, sr, plan.channels, subtypes or {})
            if writers is None and to_file and y.shape[-1]:
                targets: dict[str, Any] = {
                    n: outputs[n] for n in order if not _is_stream(outputs[n])
                }
                writers = _Writers(
                    stack,
                    targets,
                    sr,
                    plan.channels,
                    subtypes or {},
                    clip_mode=clip_mode,
                    protect=protect,
                    on_clip=on_clip,
                    replace=replace,
                )
            if writers is not None:
                writers.write(y[to_file])
            if streams is not None:
                streams.write(y[to_pipe])
            done += y.shape[-1]
            if progress is not None:
                progress(done, total)

        ended = src.reader.at_end if isinstance(src, InputStream) else _AT_END.get(f)
        for x in _chunks(f, _name(src), chunk, mono=mono, span=span, at_end=ended):
            write(separator.push(x))
        if separator.samples_in == 0:
            what = "the time range holds" if span[0] or span[1] else "contains"
            raise AudioError(f"{what} no audio samples (0 frames)", path=_name(src))
        write(separator.finish())
        if writers is not None:
            writers.finish()
    return StreamResult(
        outputs={n: _label(outputs[n]) for n in order},
        sr=sr,
        n_samples=done,
        settings=separator.settings,
    )


def _is_stream(target: Any) -> bool:
    return isinstance(target, OutputStream)


def _label(target: Any) -> str:
    return "(stdout)" if _is_stream(target) else str(target)


def separate_file(
    path: PathLike | InputStream,
    outputs: Mapping[str, PathLike | OutputStream],
    model: NMFModel | None = None,
    *,
    options: SeparateOptions | None = None,
    mono: bool = False,
    subtypes: Mapping[str, str | None] | None = None,
    n_threads: int = 1,
    progress: Progress | None = None,
    clip_mode: str = "float",
    protect: Any = None,
    on_clip: Callable[[Any], Any] | None = None,
    start: float = 0.0,
    duration: float | None = None,
    replace: bool = True,
    **overrides: Any,
) -> StreamResult:
    """Separate an audio file with a model, streaming it block by block to the output files.

    Parameters
    ----------
    path : path-like or nmfsep.pipes.InputStream
        The mixture (any format libsndfile reads; m4a/AAC and the like through ffmpeg when it
        is on PATH), or a stream (standard input).
    outputs : mapping of str to path or nmfsep.pipes.OutputStream
        Output file of each source to write (a subset of the sources is fine); the format
        follows the extension. A stream (standard output) is written as it comes.
    model : NMFModel, optional
        Default: the built-in model.
    options : SeparateOptions, optional
        Or its fields as keyword arguments.
    mono : bool
        Down-mix the input to one channel (the mean) first: the outputs are mono.
    subtypes : mapping of str to str, optional
        Sample format of each output (default: the format's default).
    n_threads : int
        Blocks separated in parallel (supervised only), each with one BLAS thread.
    progress : callable, optional
        ``progress(samples_done, samples_total)`` (total 0 when the header does not say).
    clip_mode : {"float", "rescale", "clamp"}
        Samples over full scale in an integer output (:func:`nmfsep.audio.plan_clip`; one
        decision for all the outputs): default ``float`` (WAV written as 32-bit float, FLAC
        rescaled), so the sources still sum to the mixture.
    protect : collection of paths, optional
        Files the outputs must never replace (the command's inputs; the input itself is always
        protected).
    on_clip : callable(ClipPlan), optional
        Called once when the clipping policy did something (to say it on stderr).
    start, duration : float
        Separate only this time range of the input (seconds; duration None: to the end). The
        input is read from ``start`` on (a seek, or skipped when it is a stream), so memory stays
        bounded; the outputs are ``duration`` long (shorter only where the input ends).
    replace : bool
        ``False`` (no ``--overwrite``): an output that another run put in place while this one
        worked is kept, and this one fails (:func:`nmfsep.audio.atomic_open`).

    Raises
    ------
    AudioError
        Unreadable input (as :func:`nmfsep.audio.load_audio`), or outputs that cannot be written.
    ParameterError
        Bad parameters, or a model that separates nothing.
    """
    _check_outputs(outputs)
    src = _source(path)
    protect = [_name(src), *(protect or ())]
    opts = options_from(SeparateOptions, options, overrides)
    with contextlib.ExitStack() as stack:
        f, sr, channels = _open(src, stack, mono)
        separator = Separator(model, sr=sr, channels=channels, options=opts, n_threads=n_threads)
        return _through(
            separator,
            src,
            outputs,
            mono=mono,
            subtypes=subtypes,
            progress=progress,
            clip_mode=clip_mode,
            protect=protect,
            on_clip=on_clip,
            opened=f,
            start=start,
            duration=duration,
            replace=replace,
        )


@dataclass(frozen=True)
class _Writing:
    """How a two-pass path reads its input and writes its outputs (the keywords of
    :func:`_through` that both passes share)."""

    mono: bool
    subtypes: Mapping[str, str | None] | None
    progress: Progress | None
    clip_mode: str
    protect: Any
    on_clip: Callable[[Any], Any] | None
    start: float
    duration: float | None
    replace: bool = True

    def first_pass(
        self, src: Path, label: str, stack: contextlib.ExitStack
    ) -> tuple[Any, int, int]:
        """The input's chunks for a first pass (the time range only), its rate and channels."""
        f, sr, channels = _open(src, stack, self.mono)
        span = _span(sr, self.start, self.duration)
        chunks = _chunks(f, Path(label), 1 << 18, mono=self.mono, span=span, at_end=_AT_END.get(f))
        return chunks, sr, channels

    def no_audio(self, label: str) -> AudioError:
        """The error of a first pass that read no samples."""
        what = "the time range holds" if self.start or self.duration is not None else "contains"
        return AudioError(f"{what} no audio samples (0 frames)", path=label)

    def through(
        self, separator: Any, src: Path, outputs: Mapping[str, PathLike | OutputStream]
    ) -> StreamResult:
        """The second pass: :func:`_through` with these settings."""
        return _through(
            separator, src, outputs, mono=self.mono, subtypes=self.subtypes,
            progress=self.progress, clip_mode=self.clip_mode, protect=self.protect,
            on_clip=self.on_clip, start=self.start, duration=self.duration,
            replace=self.replace,
        )  # fmt: skip


def _readable_twice(
    source: Source, spool_dir: PathLike | None, stack: contextlib.ExitStack
) -> tuple[Path, str]:
    """A path to read twice, and the input's name: a stream (it cannot be read twice) is first
    copied to a temporary file in ``spool_dir``, removed when ``stack`` closes."""
    if isinstance(source, InputStream):
        spooled = spool(source, spool_dir)
        stack.callback(spooled.unlink, missing_ok=True)
        return spooled, source.name
    return source, str(source)


def cluster_file(
    path: PathLike | InputStream,
    outputs: Mapping[str, PathLike | OutputStream],
    *,
    options: ClusterOptions | None = None,
    mono: bool = False,
    subtypes: Mapping[str, str | None] | None = None,
    n_threads: int = 1,
    progress: Progress | None = None,
    clip_mode: str = "float",
    protect: Any = None,
    on_clip: Callable[[Any], Any] | None = None,
    start: float = 0.0,
    duration: float | None = None,
    spool_dir: PathLike | None = None,
    allow_silent: bool = True,
    replace: bool = True,
    **overrides: Any,
) -> tuple[StreamResult, NMFModel]:
    """Separate a file without training, in bounded memory: a first pass samples frames and
    learns the clustered model (:mod:`nmfsep.unsupervised`), a second separates with it.

    Parameters are those of :func:`separate_file`, with :class:`~nmfsep.options.ClusterOptions`;
    ``allow_silent`` as :func:`~nmfsep.unsupervised.cluster_model`'s (``False`` when the model
    is to be saved: a digitally silent file is then an error before anything is written).
    With ``n_sources="auto"``, ``outputs`` may name more sources than are found: only those
    found are written (``result.outputs``); a stream target beyond them is an error.
    A stream (standard input, or ffmpeg's decoding) cannot be read twice: it is first copied
    to a temporary file in ``spool_dir`` (default: the system's temporary directory), removed
    at the end.

    Returns
    -------
    result : StreamResult
    model : NMFModel
        The clustered bases (``--save-model``).
    """
    _check_outputs(outputs)
    opts = options_from(ClusterOptions, options, overrides)
    with contextlib.ExitStack() as stack:
        src, label = _readable_twice(_source(path), spool_dir, stack)
        writing = _Writing(
            mono, subtypes, progress, clip_mode, [src, *(protect or ())], on_clip, start,
            duration, replace,
        )  # fmt: skip
        return _cluster(src, label, outputs, opts, n_threads, writing, allow_silent)


def _cluster(
    src: Path,
    label: str,
    outputs: Mapping[str, PathLike | OutputStream],
    opts: ClusterOptions,
    n_threads: int,
    writing: _Writing,
    allow_silent: bool,
) -> tuple[StreamResult, NMFModel]:
    from nmfsep.unsupervised import cluster_model, sample_frames

    with contextlib.ExitStack() as stack:
        chunks, sr, channels = writing.first_pass(src, label, stack)
        frames, speech, config, n = sample_frames(chunks, sr=sr, channels=channels, options=opts)
        if n == 0:
            raise writing.no_audio(label)
    model = cluster_model(
        frames, sr=sr, config=config, options=opts, speech=speech, allow_silent=allow_silent
    )
    del frames, speech
    if opts.n_sources == 0:  # auto: ``outputs`` may name more sources than were found
        names = model.source_names
        piped = [n for n in outputs if n not in names and _is_stream(outputs[n])]
        if piped:
            raise NmfsepError(
                f"no source {piped[0]}: n_sources 'auto' found {len(names)} in this mixture",
                path=label,
            )
        kept = {n: p for n, p in outputs.items() if n in names}
        if outputs and not kept:  # e.g. --sources source3 where 2 were found: nothing to write
            raise NmfsepError(
                f"no source {', '.join(outputs)}: n_sources 'auto' found {len(names)} in this "
                "mixture",
                path=label,
            )
        outputs = kept
    separator = Separator(
        model, sr=sr, channels=channels, options=opts.separate_options(), n_threads=n_threads
    )
    result = writing.through(separator, src, outputs)
    result.settings.update(model.metadata["training"]["cluster"])
    return result, model
