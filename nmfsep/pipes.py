"""Audio through pipes: reading a stream from stdin (or from ffmpeg), writing one to stdout.

libsndfile can decode WAV, FLAC, Ogg and MP3 from a stream, but it seeks while it parses a
header (back to the start, and to the end to learn the length). :class:`StreamReader` makes a
pipe look seekable enough: every byte read is kept while the head of the stream is parsed (up to
:data:`HEAD_BYTES`), later only a window of the most recent bytes, and the "end" of the stream is
a length too large to reach, so decoding simply runs until the data ends.

Writing: Ogg (Vorbis, Opus), FLAC and MP3 stream as they are written (the few seeks libsndfile
tries at the end, to patch a header, are refused: a FLAC stream then carries no total length, an
MP3 no Xing header, which readers handle). A WAV header must state the data size before the data;
on a pipe nmfsep writes the header itself with the largest sizes (``0xFFFFFFFF``, the convention of
sox and ffmpeg for streamed WAV) followed by the raw samples, so nothing is ever rewritten.

Formats libsndfile cannot read at all (m4a/AAC, WMA, ...) are decoded by ``ffmpeg`` when it is on
``PATH`` (:func:`ffmpeg_reader`), else refused with one line saying so.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import struct
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np
import soundfile as sf

from nmfsep.errors import AudioError, NmfsepError, ParameterError

__all__ = [
    "FFMPEG_EXTENSIONS",
    "STDIO",
    "OutputStream",
    "StreamReader",
    "ffmpeg_reader",
    "needs_ffmpeg",
    "open_stream",
    "spool",
]

#: The name that means standard input (as an input) or standard output.
STDIO = "-"
#: Bytes kept from the start of a stream (headers are parsed within them).
HEAD_BYTES = 4 << 20
#: Bytes kept behind the read position after the head (decoders look back a little).
WINDOW_BYTES = 1 << 20
#: Length reported for a stream (never reached: reading ends when the data does).
_ENDLESS = 1 << 62
#: Extensions that libsndfile does not read and ffmpeg does.
FFMPEG_EXTENSIONS = frozenset(
    {"m4a", "m4b", "mp4", "aac", "wma", "webm", "mka", "mkv", "mov", "ac3", "amr", "ape", "wv"}
)


class StreamReader(io.RawIOBase):
    """A non-seekable byte stream (a pipe) that libsndfile can open as if it were a file."""

    def __init__(self, raw: IO[bytes]) -> None:
        super().__init__()
        self.raw = raw
        self.buf = bytearray()  # bytes [base, base + len(buf)) of the stream
        self.base = 0
        self.pos = 0
        self.eof = False  # the end of the data has been read
        self.limit: int | None = None  # the stream ends here (a WAV's data chunk ends)
        self.rewritten: dict[int, bytes] = {}  # offset -> the original bytes stream_wav replaced

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def at_end(self) -> bool:
        """True once the whole stream was read and handed out."""
        return self.eof and self.pos >= self.base + len(self.buf)

    def peek(self, n: int) -> bytes:
        """The first ``n`` bytes of the stream (kept for the decoder)."""
        self._fill(n)
        return bytes(self.buf[:n])

    def relay(self) -> int:
        """A pipe's read end carrying this stream from its start (for decoders that handle
        pipes themselves); a thread copies the data into it."""
        import threading

        r, w = os.pipe()
        head = bytes(self.buf)

        def copy() -> None:
            with contextlib.suppress(OSError), os.fdopen(w, "wb") as out:
                out.write(head)
                while chunk := self.raw.read(1 << 16):
                    out.write(chunk)

        threading.Thread(target=copy, daemon=True).start()
        return r

    def stream_wav(self) -> None:
        """Make a WAV stream readable to its end whatever its length: libsndfile seeks past a
        data chunk of known size (to look for chunks after it) and back, which a pipe cannot do
        beyond :data:`HEAD_BYTES`. The header's sizes are rewritten to "unknown" (``0xFFFFFFFF``,
        as for a streamed WAV) and the stream ends where the data chunk does, so the samples are
        the same and nothing after them is read as audio."""
        head = self.peek(12)
        order = "<" if head[:4] == b"RIFF" else ">"
        pos = 12
        while True:
            if pos + 8 > HEAD_BYTES:
                return  # no data chunk in the head: leave it to libsndfile (and read no more)
            chunk = self.peek(pos + 8)[pos:]
            if len(chunk) < 8:
                return
            size = struct.unpack(order + "I", chunk[4:8])[0]
            if chunk[:4] == b"data":
                if size in (0, 0xFFFFFFFF):
                    return  # streamed already
                unknown = struct.pack(order + "I", 0xFFFFFFFF)
                for at in (4, pos + 4):
                    self.rewritten[at] = bytes(self.buf[at : at + 4])
                    self.buf[at : at + 4] = unknown
                self.limit = pos + 8 + size
                return
            pos += 8 + size + (size & 1)

    def head(self) -> bytes:
        """The bytes buffered from the stream's start, as they came (what :meth:`stream_wav`
        rewrote put back); the rest of the stream is still in :attr:`raw`."""
        if self.base:
            raise OSError("the start of the stream is no longer buffered")
        out = bytearray(self.buf)
        for at, original in self.rewritten.items():
            out[at : at + len(original)] = original
        return bytes(out)

    def _fill(self, upto: int) -> None:
        while not self.eof and self.base + len(self.buf) < upto:
            chunk = self.raw.read(max(upto - self.base - len(self.buf), 1 << 16))
            if not chunk:
                self.eof = True
                break
            self.buf += chunk
        # past the head, forget what lies well behind the read position
        end = self.base + len(self.buf)
        if end > HEAD_BYTES and self.pos - self.base > 2 * WINDOW_BYTES:
            drop = self.pos - WINDOW_BYTES - self.base
            del self.buf[:drop]
            self.base += drop

    def read(self, size: int = -1) -> bytes:
        if self.pos >= _ENDLESS or self.pos > self.base + len(self.buf) + (64 << 20):
            return b""  # a probe of the "end": there is nothing there
        if size is None or size < 0:
            size = 1 << 20
        if self.limit is not None:
            size = max(0, min(size, self.limit - self.pos))
        self._fill(self.pos + size)
        a = self.pos - self.base
        if a < 0:
            raise OSError("cannot seek back that far in a pipe")
        data = bytes(self.buf[a : a + size])
        self.pos += len(data)
        return data

    def readinto(self, b: Any) -> int:
        data = self.read(len(b))
        b[: len(data)] = data
        return len(data)

    def seek(self, offset: int, whence: int = 0) -> int:
        if whence == 0:
            target = offset
        elif whence == 1:
            target = self.pos + offset
        else:
            target = _ENDLESS + offset
        if target < self.base:
            raise OSError("cannot seek back that far in a pipe")
        self.pos = target
        return self.pos

    def tell(self) -> int:
        return self.pos


@contextlib.contextmanager
def _quiet_callbacks() -> Iterator[None]:
    """libsndfile's I/O callbacks run in cffi, which prints (does not raise) their exceptions:
    a refused seek on a pipe is expected, not news."""
    hook = sys.unraisablehook
    sys.unraisablehook = lambda unraisable: None
    try:
        yield
    finally:
        sys.unraisablehook = hook


@dataclass
class InputStream:
    """An audio stream to read once: stdin, or ffmpeg's output.

    Attributes
    ----------
    name : str
        What messages call it (``-`` for stdin, the file for ffmpeg).
    reader : StreamReader
    process : subprocess.Popen, optional
        The ffmpeg process decoding a file.
    """

    name: str
    reader: StreamReader
    process: subprocess.Popen[bytes] | None = None
    _opened: sf.SoundFile | None = field(default=None, repr=False)

    def format_info(self) -> tuple[str, str]:
        """The stream's container and sample format (``"WAV"``, ``"PCM_24"``), read from its
        header; the stream stays open for :meth:`open`."""
        if self._opened is None:
            self._opened = self.open()
        return str(self._opened.format), str(self._opened.subtype)

    def open(self) -> sf.SoundFile:
        """The stream as a sound file (call once; after :meth:`format_info`, its file).

        WAV and FLAC are parsed through :class:`StreamReader`; Ogg through a pipe that
        libsndfile reads natively (libvorbisfile would otherwise search the "end" of the
        stream); MP3 is refused (libsndfile's decoder loses frames on a pipe)."""
        if self._opened is not None:
            opened, self._opened = self._opened, None
            return opened
        head = self.reader.peek(12)
        if not head:
            self.close()
            raise AudioError("no audio on standard input (empty stream)", path=self.name)
        if head[:3] == b"ID3" or (len(head) > 1 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0):
            self.close()
            raise AudioError(
                "MP3 cannot be read from a pipe (libsndfile loses frames); give the file name, "
                "or pipe WAV, FLAC or Ogg",
                path=self.name,
            )
        wav = head[:4] in (b"RIFF", b"RIFX") and head[8:12] == b"WAVE"
        if not (wav or head[:4] in (b"OggS", b"fLaC", b"RF64")):
            # other containers make libsndfile seek about a pipe (an 8SVX stream spins forever)
            self.close()
            raise AudioError(
                "not a WAV, FLAC or Ogg stream: from a pipe nmfsep reads those; give the file "
                "name for other formats",
                path=self.name,
            )
        try:
            with _quiet_callbacks():
                if head[:4] == b"OggS":
                    return sf.SoundFile(self.reader.relay(), closefd=True)
                if wav:
                    self.reader.stream_wav()
                return sf.SoundFile(self.reader)
        except (sf.SoundFileError, RuntimeError, ValueError, TypeError, OSError) as exc:
            self.close()
            detail = str(exc).split(": ", 1)[-1].strip() or type(exc).__name__
            raise AudioError(
                f"cannot decode the stream ({detail}); from a pipe nmfsep reads WAV, FLAC and Ogg",
                path=self.name,
            ) from None

    def close(self) -> None:
        """Stop the decoder (if any); an ffmpeg failure becomes an AudioError."""
        if self.process is None:
            return
        proc, self.process = self.process, None
        if proc.stdout is not None:
            proc.stdout.close()
        err = proc.stderr.read().decode(errors="replace") if proc.stderr is not None else ""
        code = proc.wait()
        if code not in (0, -13, 255) and err.strip():  # -13: SIGPIPE after we stopped reading
            last = err.strip().splitlines()[-1]
            raise AudioError(f"ffmpeg could not decode it: {last}", path=self.name)


def open_stream(name: str = STDIO) -> InputStream:
    """Standard input as an :class:`InputStream`."""
    return InputStream(name=name, reader=StreamReader(sys.stdin.buffer))


def needs_ffmpeg(path: str | os.PathLike[str]) -> bool:
    """True for a file libsndfile cannot read but ffmpeg can (by extension)."""
    return Path(path).suffix.lower().lstrip(".") in FFMPEG_EXTENSIONS


def ffmpeg_reader(path: str | os.PathLike[str]) -> InputStream:
    """Decode ``path`` with ffmpeg (on ``PATH``) into a 32-bit float WAV stream.

    Raises
    ------
    AudioError
        ffmpeg is not installed, or the file does not exist.
    """
    p = Path(path)
    ext = p.suffix.lower().lstrip(".") or "this format"
    exe = shutil.which("ffmpeg")
    if exe is None:
        raise AudioError(
            f"{ext} files need ffmpeg to decode, and ffmpeg is not on PATH "
            "(install it, or convert the file to WAV/FLAC first)",
            path=p,
        )
    if not p.is_file():
        raise AudioError("no such file", path=p)
    proc = subprocess.Popen(
        [exe, "-nostdin", "-v", "error", "-i", os.fspath(p), "-vn"]  # noqa: RUF005
        + ["-f", "wav", "-acodec", "pcm_f32le", "-"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None
    return InputStream(name=os.fspath(p), reader=StreamReader(proc.stdout), process=proc)


def spool(stream: InputStream, directory: str | os.PathLike[str] | None = None) -> Path:
    """Copy a stream into a temporary file (for the two passes of ``cluster``); the caller
    removes it. ``directory``: where (default the system's temporary directory)."""
    where = os.fspath(directory) if directory is not None else tempfile.gettempdir()
    try:
        fd, name = tempfile.mkstemp(prefix=".nmfsep-stdin-", suffix=".audio", dir=directory)
    except OSError as exc:
        stream.close()
        raise NmfsepError(
            f"cannot make a temporary file to copy the stream into ({exc.strerror})", path=where
        ) from None
    try:
        with os.fdopen(fd, "wb") as out:
            # what was read already (the header, when format_info looked at it), then the rest
            out.write(stream.reader.head())
            shutil.copyfileobj(stream.reader.raw, out, 1 << 20)
    except OSError as exc:  # a full $TMPDIR: one line naming it, not an internal error
        os.unlink(name)
        raise NmfsepError(
            f"cannot copy the stream to a temporary file there ({exc.strerror}); set TMPDIR "
            "to a directory with room",
            path=where,
        ) from None
    except BaseException:
        os.unlink(name)
        raise
    finally:
        stream.close()
    return Path(name)


# ------------------------------------------------------------------------------ writing


class _PipeOut(io.RawIOBase):
    """Write-only view of a pipe for libsndfile: seeks to where it already is are fine, any
    other is refused (tell() answers -1 until the next write)."""

    def __init__(self, raw: IO[bytes]) -> None:
        super().__init__()
        self.raw = raw
        self.pos = 0
        self.refused = False
        #: the first write error (a closed pipe, a full disk), as ``audio._GuardedFile`` keeps
        #: it: raised from here it would reach only cffi's callback, which prints it and lets
        #: libsndfile fail on the short write
        self.failure: OSError | None = None

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        return b""

    def readinto(self, b: Any) -> int:
        return 0

    def write(self, b: Any) -> int:
        n = len(b)
        if n and self.failure is None:
            try:
                self.raw.write(bytes(b))
            except OSError as exc:
                self.failure = exc
        self.pos += n
        self.refused = False
        return n

    def seek(self, offset: int, whence: int = 0) -> int:
        target = offset if whence == 0 else self.pos + offset
        self.refused = target != self.pos
        return self.pos

    def tell(self) -> int:
        return -1 if self.refused else self.pos


def _wav_header(sr: int, channels: int, subtype: str) -> bytes:
    bits = {"PCM_16": 16, "PCM_24": 24, "PCM_32": 32, "FLOAT": 32, "DOUBLE": 64, "PCM_U8": 8}
    if subtype not in bits:
        raise ParameterError(
            f"subtype {subtype} cannot be streamed as WAV; use PCM_16, PCM_24, PCM_32 or FLOAT"
        )
    b = bits[subtype]
    tag = 3 if subtype in ("FLOAT", "DOUBLE") else 1
    align = channels * b // 8
    unknown = 0xFFFFFFFF
    fmt = struct.pack("<HHIIHH", tag, channels, sr, sr * align, align, b)
    return (
        b"RIFF"
        + struct.pack("<I", unknown)
        + b"WAVE"
        + b"fmt "
        + struct.pack("<I", len(fmt))
        + fmt
        + b"data"
        + struct.pack("<I", unknown)
    )


@dataclass
class OutputStream:
    """A sound stream to write to a pipe (stdout): a libsndfile format (``WAV``, ``FLAC``,
    ``OGG``, ``MP3``) and optionally a subtype."""

    fh: IO[bytes]
    format: str
    _pipe: _PipeOut | None = field(default=None, init=False, repr=False)

    def check(self) -> None:
        """Raise the write error (``OSError``) the pipe met, if any: call after each write."""
        if self._pipe is not None and self._pipe.failure is not None:
            raise self._pipe.failure

    def open(self, sr: int, channels: int, subtype: str) -> Any:
        """A writer with ``write(frames_by_channels)`` and ``close()``; write errors are
        raised by :meth:`check`."""
        seekable = False
        with contextlib.suppress(OSError, ValueError, AttributeError):
            seekable = os.lseek(self.fh.fileno(), 0, os.SEEK_CUR) >= 0 and not _is_pipe(self.fh)
        if seekable:  # a regular file behind stdout: libsndfile writes it as it would any file
            return sf.SoundFile(
                self.fh,
                "w",
                samplerate=sr,
                channels=channels,
                format=self.format,
                subtype=subtype,
            )
        self._pipe = _PipeOut(self.fh)
        if self.format == "WAV":
            self.fh.write(_wav_header(sr, channels, subtype))
            return sf.SoundFile(
                self._pipe,
                "w",
                samplerate=sr,
                channels=channels,
                format="RAW",
                subtype=subtype,
                endian="LITTLE",
            )
        return _Quiet(
            sf.SoundFile(
                self._pipe,
                "w",
                samplerate=sr,
                channels=channels,
                format=self.format,
                subtype=subtype,
            )
        )


def detach_stdout() -> None:
    """Point standard output at the null device, so that nothing later (the interpreter's
    final flush) writes to a pipe the reader has closed."""
    with contextlib.suppress(OSError, ValueError, AttributeError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


def _is_pipe(fh: IO[bytes]) -> bool:
    import stat

    return not stat.S_ISREG(os.fstat(fh.fileno()).st_mode)


class _Quiet:
    """A sound file whose refused seeks (at close) are not reported."""

    def __init__(self, f: sf.SoundFile) -> None:
        self.f = f

    def write(self, data: np.ndarray) -> None:
        self.f.write(data)

    def close(self) -> None:
        with _quiet_callbacks():
            self.f.close()
