"""Reading, writing and resampling audio files (soundfile / libsndfile, soxr).

Conventions
-----------
Audio arrays are always 2-D, shape ``(n_channels, n_samples)``, float32 (``load_audio``), with
values in ``[-1, 1]`` for integer files (float files are returned as stored).

Policies decided here
---------------------
* **Truncated files.** A file whose header claims more data than the file holds (a recording cut
  short by a crash or a partial copy) is read up to the end of the data actually present, as most
  audio tools do; :func:`audio_info` reports it with ``truncated=True`` and ``frames`` is the number
  of frames really readable. Data that cannot be decoded (for example a FLAC stream cut in the
  middle, which loses sync) is refused with :class:`~nmfsep.errors.AudioError`.
* **Output sample format.** :func:`write_audio` keeps the caller's ``subtype`` when given; otherwise
  WAV and FLAC are written as 16-bit PCM (``PCM_16``), OGG as Vorbis, other formats with
  libsndfile's default. For integer (PCM) subtypes the samples are clipped to ``[-1, 1]`` first
  (libsndfile would otherwise wrap around); float subtypes are written unclipped.
* **Atomic outputs.** Every output is written to a hidden temporary file in the destination
  directory, named ``.{name}.{tag}.nmfsep-tmp`` (never ending with the output extension), flushed
  to disk, then renamed over the destination with :func:`os.replace`. On any exception, including
  ``KeyboardInterrupt``, the temporary file is removed; after a ``SIGKILL`` it is left behind and
  :func:`cleanup_temp_files` removes it when a later run writes into that directory (only names
  of that exact pattern whose writer is dead: never a user's file).

Every problem a user can cause is raised as :class:`~nmfsep.errors.AudioError` (or
:class:`~nmfsep.errors.ParameterError` for bad arguments) with a one-line message.
"""

from __future__ import annotations

import contextlib
import errno
import io
import math
import os
import re
import secrets
import socket
import stat
import time
import zlib
from collections.abc import Callable, Collection, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Literal, TypeVar

import numpy as np
import soundfile as sf

from nmfsep import limits
from nmfsep.errors import AudioError, NmfsepError, ParameterError

__all__ = [
    "AUDIO_EXTENSIONS",
    "CLIP_MODES",
    "TEMP_SUFFIX",
    "AudioInfo",
    "ClipPlan",
    "Protected",
    "atomic_open",
    "audio_info",
    "check_target",
    "cleanup_temp_files",
    "find_audio_files",
    "load_audio",
    "no_peak_chunk",
    "plan_clip",
    "resample",
    "sf_message",
    "write_audio",
    "write_error",
]

PathLike = str | os.PathLike[str]
E = TypeVar("E", bound=NmfsepError)

#: Suffix of the temporary files written by :func:`atomic_open` (and hence :func:`write_audio`).
TEMP_SUFFIX = ".nmfsep-tmp"

# libsndfile major format -> file extensions users give such files. RAW (header-less) and
# MAT4/MAT5 (MATLAB) are left out on purpose: they are not recognisable audio files.
_FORMAT_EXTENSIONS: dict[str, tuple[str, ...]] = {
    "WAV": ("wav", "wave"),
    "WAVEX": ("wav",),
    "FLAC": ("flac",),
    "OGG": ("ogg", "oga", "opus"),
    "MP3": ("mp3",),
    "AIFF": ("aif", "aiff", "aifc"),
    "AU": ("au", "snd"),
    "CAF": ("caf",),
    "W64": ("w64",),
    "RF64": ("rf64",),
    "VOC": ("voc",),
    "NIST": ("sph", "nist"),
    "SD2": ("sd2",),
    "PAF": ("paf",),
    "SVX": ("iff", "svx"),
    "AVR": ("avr",),
    "WVE": ("wve",),
    "XI": ("xi",),
}

#: Lower-case extensions (without dot) of the audio files the installed libsndfile can read.
AUDIO_EXTENSIONS: frozenset[str] = frozenset(
    ext for fmt, exts in _FORMAT_EXTENSIONS.items() if fmt in sf.available_formats() for ext in exts
)

# extension -> (libsndfile format, default subtype when writing)
_WRITE_FORMATS: dict[str, tuple[str, str | None]] = {
    "wav": ("WAV", "PCM_16"),
    "wave": ("WAV", "PCM_16"),
    "flac": ("FLAC", "PCM_16"),
    "ogg": ("OGG", "VORBIS"),
    "oga": ("OGG", "VORBIS"),
    "opus": ("OGG", "OPUS"),
    "mp3": ("MP3", "MPEG_LAYER_III"),
    "aif": ("AIFF", "PCM_16"),
    "aiff": ("AIFF", "PCM_16"),
    "w64": ("W64", "PCM_16"),
    "rf64": ("RF64", "PCM_16"),
    "caf": ("CAF", "PCM_16"),
    "au": ("AU", "PCM_16"),
}

_BLOCK_FRAMES = 1 << 16  # frames per block when reading/writing (bounds temporary memory)


# --------------------------------------------------------------------------------------------
# the message tables (libsndfile and OS errors -> user words)

#: OS errors -> what the user is told (after "cannot read file: " / "cannot write: ").
_OS_MESSAGES: dict[int, str] = {
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.ENOENT: "no such file or directory",
    errno.EISDIR: "is a directory",
    errno.ENOTDIR: "a component of the path is not a directory",
    errno.ENOSPC: "no space left on device",
    errno.EFBIG: "file too large for the file system",
    errno.EROFS: "read-only file system",
    errno.ENAMETOOLONG: "file name too long",
    errno.ELOOP: "too many levels of symbolic links (a symbolic link loop?)",
    errno.EIO: "input/output error (failing disk or network file system)",
    errno.EMFILE: "too many open files",
    errno.ENFILE: "too many open files in the system",
    errno.ETXTBSY: "file is busy",
    errno.ENXIO: "no such device",
    errno.ENODEV: "no such device",
    errno.EINVAL: "invalid argument (the file system refused the operation)",
}
if hasattr(errno, "EDQUOT"):
    _OS_MESSAGES[errno.EDQUOT] = "disk quota exceeded"
#: errnos that mean "the disk is full": said as such, without "cannot write:".
_DISK_FULL = {errno.ENOSPC, errno.EFBIG, getattr(errno, "EDQUOT", errno.ENOSPC)}

#: Lower-case fragments of libsndfile messages -> what the user is told (first match wins).
#: libsndfile's own words ("SF_INFO struct incomplete", "Unspecified internal error") mean
#: nothing to a user; a header field that is out of range is named by :func:`_header_problem`.
_SF_MESSAGES: tuple[tuple[str, str], ...] = (
    ("format not recognised", "not a recognised audio format"),
    ("format not recognized", "not a recognised audio format"),
    ("file contains data in an unknown format", "not a recognised audio format"),
    ("sf_info struct incomplete", "invalid sample rate, channels or format"),
    ("channel count is zero", "0 channels"),
    ("too many channels", "too many channels"),
    ("bad sample rate", "invalid sample rate"),
    ("does not exist or is not a regular file", "cannot be parsed"),
    ("unspecified internal error", "libsndfile could not decode it"),
    ("internal error", "libsndfile could not decode it"),
    ("unexpected end of file", "unexpected end of file"),
    ("file has no data", "no audio data"),
    ("system error", "system error"),
    ("error in wav file", "WAV structure is invalid"),
    ("error in aiff file", "AIFF structure is invalid"),
    ("flac", "FLAC stream is invalid"),
    ("unsupported", "unsupported encoding"),
    ("not supported", "unsupported encoding"),
    ("invalid combination", "this format cannot hold these channels, rate or sample format"),
    ("bad format", "this format cannot hold these channels, rate or sample format"),
)
#: Messages of :func:`_open_error` for the table words that are not about a bad header.
_OPEN_MESSAGES = {
    "not a recognised audio format": "not an audio file, or a format libsndfile cannot read",
    "cannot be parsed": "malformed or truncated audio file (cannot be parsed)",
    "system error": "cannot open file (system error)",
    "no audio data": "contains no audio samples (0 frames)",
}

#: libsndfile's "frames" of a stream whose header does not give the length (FLAC written to
#: a pipe, OGG): SF_COUNT_MAX.
_UNKNOWN_FRAMES = (1 << 63) - 1

_FILE_KINDS = (
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISDIR, "a directory"),
)


def _one_line(text: object) -> str:
    """Collapse whitespace so that a message is always a single line."""
    return " ".join(str(text).split())


def _sf_detail(exc: BaseException) -> str:
    """The useful part of a libsndfile error message (without "Error opening 'path': ")."""
    msg = _one_line(exc)
    # the name is a quoted path, or the repr of a file object ("<_io.FileIO name=5 ...>")
    m = re.match(r"Error opening (?:'.*?'|<.*?>): (.*)$", msg)
    if m:
        msg = m.group(1)
    for prefix in ("Error : ", "Internal error : "):
        if msg.startswith(prefix):
            msg = msg[len(prefix) :]
    return msg.rstrip(".") or type(exc).__name__


def sf_message(exc: BaseException) -> str:
    """User words for a libsndfile error (the message table), one line."""
    detail = _sf_detail(exc)
    low = detail.lower()
    for fragment, words in _SF_MESSAGES:
        if fragment in low:
            return words
    return detail


def _os_message(exc: OSError) -> str:
    """User words for an OS error (the message table), one line."""
    if exc.errno in _OS_MESSAGES:
        return _OS_MESSAGES[exc.errno]
    if isinstance(exc, PermissionError):
        return "permission denied"
    if isinstance(exc, FileNotFoundError):
        return "no such file or directory"
    return _one_line(exc.strerror or exc)


def os_error(exc: OSError) -> NmfsepError:
    """An OS error about a file (``exc.filename`` set) as one clear line naming it, the path
    shortened: what a path check that the OS refused (a name over 255 bytes, a directory
    without search permission) tells the user instead of an internal error."""
    name = exc.filename if exc.filename is not None else "?"
    return NmfsepError(_os_message(exc), path=_short(Path(os.fsdecode(name))))


def _file_kind(mode: int) -> str | None:
    """What a non-regular file is ("a FIFO (named pipe)", ...), None for a regular file."""
    for test, name in _FILE_KINDS:
        if test(mode):
            return name
    return None if stat.S_ISREG(mode) else "not a regular file"


def _check_sr(sr: object, name: str = "sr") -> int:
    if isinstance(sr, bool) or not isinstance(sr, (int, np.integer, float, np.floating)):
        raise ParameterError(f"{name} must be a positive integer (Hz), got {sr!r}")
    if not np.isfinite(sr) or int(sr) != sr or int(sr) <= 0:
        raise ParameterError(f"{name} must be a positive integer (Hz), got {sr!r}")
    return int(sr)


#: Said after "no such file" when the missing path is "-" (where stdin cannot be read).
STDIN_HINT = ' (standard input, "-", is read by separate and cluster only)'


def _check_path_length(path: Path, error: type[NmfsepError]) -> None:
    """Refuse a path longer than PATH_MAX or with a component longer than NAME_MAX (bytes)."""
    raw = os.fsencode(path)
    if len(raw) >= _PATH_MAX:
        raise error(
            f"path too long ({len(raw)} bytes; the limit is {_PATH_MAX - 1})",
            path=_short(path),
        )
    for part in raw.split(b"/"):
        if len(part) > _NAME_MAX:
            raise error(
                f"file name too long ({len(part)} bytes; the limit is {_NAME_MAX})",
                path=_short(path),
            )


def _short(path: Path) -> str:
    """A path shortened for a message (a 5000-character path is not a useful error line)."""
    text = os.fspath(path)
    return text if len(text) <= 200 else f"{text[:90]}...{text[-90:]}"


_PATH_MAX = 4096
_NAME_MAX = 255


def _check_readable_file(path: Path) -> os.stat_result:
    """Refuse paths that are not readable, non-empty regular files (clear messages)."""
    _check_path_length(path, AudioError)
    try:
        st = path.stat()
    except FileNotFoundError:
        hint = STDIN_HINT if os.fspath(path) == "-" else ""
        raise AudioError("no such file" + hint, path=path) from None
    except NotADirectoryError:
        raise AudioError(
            "no such file (a component of the path is not a directory)", path=path
        ) from None
    except OSError as exc:
        raise AudioError(f"cannot access file: {_os_message(exc)}", path=path) from None
    if stat.S_ISDIR(st.st_mode):
        raise AudioError("is a directory, not an audio file", path=path)
    kind = _file_kind(st.st_mode)
    if kind is not None:
        raise AudioError(
            f"is not a regular file ({kind}); audio can only be read from regular files",
            path=path,
        )
    if st.st_size == 0:
        raise AudioError("is empty (0 bytes), not an audio file", path=path)
    try:
        with open(path, "rb") as fh:
            fh.read(1)
    except OSError as exc:
        raise AudioError(f"cannot read file: {_os_message(exc)}", path=path) from None
    return st


def _header_fields(path: Path) -> tuple[int | None, int | None]:
    """(sample rate, channels) as written in a WAV/RF64/W64, AIFF or FLAC header, if found.

    Used only to explain a header libsndfile refuses ("SF_INFO struct incomplete"): reads at
    most 64 KiB, never raises.
    """
    try:
        with open(path, "rb") as fh:
            head = fh.read(1 << 16)
    except OSError:
        return None, None
    try:
        if head[:4] in (b"RIFF", b"RF64", b"RIFX") and head[8:12] == b"WAVE":
            order: Literal["big", "little"] = "big" if head[:4] == b"RIFX" else "little"
            pos = 12
            while pos + 8 <= len(head):
                cid, size = head[pos : pos + 4], int.from_bytes(head[pos + 4 : pos + 8], order)
                if cid == b"fmt " and pos + 16 <= len(head):
                    ch = int.from_bytes(head[pos + 10 : pos + 12], order)
                    sr = int.from_bytes(head[pos + 12 : pos + 16], order)
                    return sr, ch
                pos += 8 + size + (size & 1)
        if head[:4] == b"FORM" and head[8:12] in (b"AIFF", b"AIFC"):
            pos = 12
            while pos + 8 <= len(head):
                cid, size = head[pos : pos + 4], int.from_bytes(head[pos + 4 : pos + 8], "big")
                if cid == b"COMM" and pos + 26 <= len(head):
                    ch = int.from_bytes(head[pos + 8 : pos + 10], "big")
                    ext = head[pos + 16 : pos + 26]
                    exp = (int.from_bytes(ext[:2], "big") & 0x7FFF) - 16383
                    mant = int.from_bytes(ext[2:], "big")
                    sr = int(mant * 2.0 ** (exp - 63)) if mant else 0
                    return sr, ch
                pos += 8 + size + (size & 1)
        if head[:4] == b"fLaC" and len(head) >= 8 + 18:
            info = head[8:26]
            sr = int.from_bytes(info[10:13], "big") >> 4
            ch = ((info[12] >> 1) & 0x7) + 1
            return sr, ch
    except (IndexError, ValueError, OverflowError):  # pragma: no cover - defensive
        pass
    return None, None


def _check_header(sr: object, channels: object, path: Path) -> None:
    """Header fields against the limit table (before anything is allocated from them)."""
    limits.check_sample_rate(
        sr, what="sample rate", where=" in the header", error=AudioError, path=path
    )
    if isinstance(channels, int) and channels <= 0:
        raise AudioError(f"malformed audio header ({channels} channels)", path=path)
    limits.check_count(
        "number of channels in the header",
        channels,
        limits.MAX_CHANNELS,
        error=AudioError,
        path=path,
    )


def _open_error(exc: BaseException, path: Path) -> AudioError:
    detail = _sf_detail(exc).lower()
    if "sf_info struct incomplete" in detail or "channel" in detail or "sample rate" in detail:
        sr, ch = _header_fields(path)
        if sr is not None:
            try:
                _check_header(sr, ch, path)
            except AudioError as err:
                return err
    words = sf_message(exc)
    if words == "unsupported encoding":
        return AudioError(f"unsupported audio encoding ({_sf_detail(exc)})", path=path)
    if words in _OPEN_MESSAGES:
        return AudioError(_OPEN_MESSAGES[words], path=path)
    return AudioError(f"malformed or truncated audio header ({words})", path=path)


def _open_for_reading(path: Path) -> sf.SoundFile:
    _check_readable_file(path)
    try:
        # bytes: soundfile encodes str names as strict UTF-8 and fails on other names
        f = sf.SoundFile(os.fsencode(path))
    except (sf.SoundFileError, RuntimeError, ValueError, TypeError, OverflowError) as exc:
        raise _open_error(exc, path) from None
    except OSError as exc:  # pragma: no cover - race with the checks above
        raise AudioError(f"cannot open file: {_os_message(exc)}", path=path) from None
    try:
        sr, channels = int(f.samplerate), int(f.channels)
    except Exception:  # pragma: no cover - defensive
        f.close()
        raise AudioError("malformed audio header", path=path) from None
    try:
        _check_header(sr, channels, path)
    except AudioError:
        f.close()
        raise
    return f


def _header_truncated(f: sf.SoundFile) -> bool:
    """True when libsndfile noticed that the header promises more data than the file holds."""
    try:
        log = f.extra_info
    except Exception:  # pragma: no cover - defensive
        return False
    return "should be" in log and ("data" in log.lower() or "ssnd" in log.lower())


def _length_unknown(f: sf.SoundFile) -> bool:
    """True when the header does not give the number of frames (a FLAC written to a pipe)."""
    return int(f.frames) >= _UNKNOWN_FRAMES or int(f.frames) < 0


class _Stream:
    """A file of unknown length opened through a file object, so that its end can be told.

    libsndfile reports the end of a FLAC stream whose header gives no length as an error ("flac
    decoder lost sync"); when that happens with the whole file consumed it is the end of the
    data present (the policy of truncated files), and the frames decoded by the failing call
    are kept (the block is pre-filled with NaN, which decoding never produces).
    """

    def __init__(self, path: Path, stack: contextlib.ExitStack) -> None:
        self.fh = stack.enter_context(open(path, "rb"))
        self.size = os.fstat(self.fh.fileno()).st_size
        try:
            self.f = stack.enter_context(sf.SoundFile(self.fh))
        except (sf.SoundFileError, RuntimeError, ValueError, TypeError, OverflowError) as exc:
            raise _open_error(exc, path) from None
        self.ended = False

    def read(self, want: int) -> np.ndarray:
        if self.ended:
            return np.empty((0, int(self.f.channels)), np.float32)
        buf = np.full((want, int(self.f.channels)), np.nan, np.float32)
        try:
            return self.f.read(want, dtype="float32", always_2d=True, out=buf)
        except (sf.SoundFileError, RuntimeError):
            if self.fh.tell() < self.size:
                raise
        self.ended = True
        bad = np.isnan(buf).any(axis=1)
        return buf[: int(np.argmax(bad)) if bad.any() else want]


def _read_block(f: sf.SoundFile, stream: _Stream | None, want: int) -> np.ndarray:
    if stream is None:
        return f.read(want, dtype="float32", always_2d=True)
    return stream.read(want)


def _count_frames(path: Path) -> int:
    """Frames of a stream of unknown length, by decoding it (bounded memory)."""
    n = 0
    with contextlib.ExitStack() as stack:
        stream = _Stream(path, stack)
        try:
            while True:
                got = stream.read(_BLOCK_FRAMES).shape[0]
                n += got
                if got < _BLOCK_FRAMES:
                    break
        except (sf.SoundFileError, RuntimeError, ValueError, OverflowError) as exc:
            raise AudioError(
                f"audio data is corrupt or truncated ({sf_message(exc)})", path=path
            ) from None
    return n


# --------------------------------------------------------------------------------------------
# information


@dataclass(frozen=True)
class AudioInfo:
    """What the header of an audio file says.

    Attributes
    ----------
    sr : int
        Sample rate in Hz.
    channels : int
        Number of channels.
    frames : int
        Number of frames (samples per channel) that can be read (counted by decoding when the
        header does not give it, as in a FLAC stream written to a pipe).
    duration : float
        ``frames / sr`` in seconds.
    format : str
        libsndfile major format, e.g. ``"WAV"``, ``"FLAC"``.
    subtype : str
        libsndfile subtype, e.g. ``"PCM_16"``, ``"FLOAT"``.
    truncated : bool
        True when the header claims more data than the file holds (only what is present is read).
    """

    sr: int
    channels: int
    frames: int
    duration: float
    format: str
    subtype: str
    truncated: bool = False


def audio_info(path: PathLike) -> AudioInfo:
    """Read an audio file's header.

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    AudioInfo

    Raises
    ------
    AudioError
        Missing, unreadable, empty, non-regular (FIFO, device), non-audio or malformed file, or
        a header whose sample rate or channel count is outside the limit table
        (:mod:`nmfsep.limits`).
    """
    p = Path(path)
    with _open_for_reading(p) as f:
        sr, channels = int(f.samplerate), int(f.channels)
        frames = _count_frames(p) if _length_unknown(f) else max(int(f.frames), 0)
        return AudioInfo(
            sr=sr,
            channels=channels,
            frames=frames,
            duration=frames / sr,
            format=str(f.format),
            subtype=str(f.subtype),
            truncated=_header_truncated(f),
        )


# --------------------------------------------------------------------------------------------
# reading


def load_audio(
    path: PathLike,
    *,
    sr: int | None = None,
    mono: bool = False,
    offset: float = 0.0,
    duration: float | None = None,
    max_seconds: float | None = limits.MAX_SECONDS,
) -> tuple[np.ndarray, int]:
    """Load an audio file as float32 samples, shape ``(n_channels, n_samples)``.

    Anything the installed libsndfile reads is accepted (WAV, FLAC, OGG/Vorbis/Opus, AIFF, MP3
    when libsndfile has it, ...), any bit depth, any number of channels, any sample rate.
    The file is read block by block into a pre-allocated array (peak memory about the size of
    the result, plus the resampled copy when ``sr`` is given).

    Parameters
    ----------
    path : str or os.PathLike
        The audio file.
    sr : int, optional
        Resample to this rate (soxr, ``"soxr_hq"``); default: keep the file's rate.
    mono : bool
        Average the channels into one (result shape ``(1, n_samples)``).
    offset : float
        Start reading this many seconds into the file.
    duration : float, optional
        Read at most this many seconds (default: to the end).
    max_seconds : float or None
        Refuse (before allocating) to load more than this many seconds at once (default
        :data:`nmfsep.limits.MAX_SECONDS`); ``None``: no limit but the memory limit
        (:data:`nmfsep.limits.MAX_ARRAY_BYTES` for the samples, and for the resampled copy).

    Returns
    -------
    y : np.ndarray, shape (n_channels, n_samples), float32
        Samples (integer files are scaled to ``[-1, 1)``).
    sr : int
        Sample rate of ``y``.

    Raises
    ------
    AudioError
        Missing file, directory, FIFO or device, empty file, not audio, malformed header, a
        sample rate or channel count outside the limit table, too long or too big to load, no
        samples, undecodable data, NaN or infinite samples.
    ParameterError
        ``sr`` is not a positive integer, ``offset`` negative or ``duration`` not positive.

    Notes
    -----
    A file whose header claims more frames than it holds is read up to the end of the data that
    is present (see :func:`audio_info`, ``truncated``); one whose header does not give its
    length (FLAC from a pipe) is read to its end, the array grown as needed.
    """
    target_sr = None if sr is None else limits.check_sample_rate(sr, what="sr")
    if not (isinstance(offset, (int, float, np.number)) and np.isfinite(offset) and offset >= 0):
        raise ParameterError(f"offset must be a number of seconds >= 0, got {offset!r}")
    if duration is not None and not (
        isinstance(duration, (int, float, np.number)) and np.isfinite(duration) and duration > 0
    ):
        raise ParameterError(f"duration must be a number of seconds > 0, got {duration!r}")
    if max_seconds is not None:
        max_seconds = limits.check_seconds(max_seconds, what="max_seconds", maximum=math.inf)
    p = Path(path)
    with contextlib.ExitStack() as stack:
        f = stack.enter_context(_open_for_reading(p))
        native_sr, channels = int(f.samplerate), int(f.channels)
        unknown = _length_unknown(f)
        stream = None
        if unknown:  # reopened through a file object, so that its end can be told
            f.close()
            stream = _Stream(p, stack)
            f = stream.f
        declared = _UNKNOWN_FRAMES if unknown else max(int(f.frames), 0)
        start = round(float(offset) * native_sr)
        if start > 0:
            if start >= declared:
                raise AudioError(
                    f"offset {offset} s is past the end of the audio"
                    f" ({declared / native_sr:.3f} s)",
                    path=p,
                )
            try:
                f.seek(start)
            except (sf.SoundFileError, RuntimeError, ValueError) as exc:
                raise AudioError(f"cannot seek in audio data ({_sf_detail(exc)})", path=p) from None
            declared -= start
        if duration is not None:
            declared = min(declared, max(1, round(float(duration) * native_sr)))
        out_channels = 1 if mono else channels
        limit = _frame_limit(max_seconds, native_sr, target_sr, out_channels, p)
        if not unknown and declared > limit.frames:
            raise limit.error(declared)
        # a stream of unknown length: start from a guess bounded by the file's size, grow
        initial = declared if not unknown else min(limit.frames, max(_BLOCK_FRAMES, size_guess(p)))
        try:
            y = np.empty((out_channels, initial), dtype=np.float32)
        except (MemoryError, ValueError):
            raise AudioError(
                f"too large to load into memory ({initial} frames x {channels} channels)",
                path=p,
            ) from None
        n = 0
        try:
            while True:
                if duration is not None and n >= declared:
                    break
                want = _BLOCK_FRAMES if n >= declared else min(_BLOCK_FRAMES, declared - n)
                block = _read_block(f, stream, want)
                got = block.shape[0]
                if got == 0:
                    break
                if not np.isfinite(block).all():
                    raise AudioError("contains NaN or infinite samples", path=p)
                if n + got > y.shape[1]:  # more data than the header said: grow
                    if n + got > limit.frames:
                        raise limit.error(n + got, more=True)
                    size = min(max(2 * y.shape[1], n + got), limit.frames)
                    grown = np.empty((out_channels, size), np.float32)
                    grown[:, :n] = y[:, :n]
                    y = grown
                if mono:
                    np.mean(block, axis=1, out=y[0, n : n + got])
                else:
                    y[:, n : n + got] = block.T
                n += got
                if got < want:
                    break
        except AudioError:
            raise
        except (sf.SoundFileError, RuntimeError, ValueError, OverflowError) as exc:
            raise AudioError(
                f"audio data is corrupt or truncated ({sf_message(exc)})", path=p
            ) from None
        except MemoryError:
            raise AudioError("too large to load into memory", path=p) from None
    if n == 0:
        raise AudioError("contains no audio samples (0 frames)", path=p)
    if n < y.shape[1]:
        y = np.ascontiguousarray(y[:, :n])
    if target_sr is not None and target_sr != native_sr:
        n_out = -(-n * target_sr // native_sr)
        limits.check_memory(
            "the resampled audio", rows=out_channels, cols=n_out, error=AudioError, path=p
        )
        y = resample(y, native_sr, target_sr)
        return y, target_sr
    return y, native_sr


def size_guess(path: Path) -> int:
    """Frames to allocate first for a stream of unknown length (4 x its size in bytes)."""
    try:
        return 4 * path.stat().st_size
    except OSError:  # pragma: no cover - defensive
        return _BLOCK_FRAMES


@dataclass(frozen=True)
class _FrameLimit:
    frames: int
    seconds: float | None
    sr: int
    channels: int
    path: Path

    def error(self, frames: int, *, more: bool = False) -> AudioError:
        what = "more than " if more else ""
        dur = frames / self.sr
        if self.seconds is not None and frames > self.seconds * self.sr:
            return AudioError(
                f"too long to load at once ({what}{dur / 3600:.2f} h; the limit is "
                f"{self.seconds / 3600:g} h)",
                path=self.path,
            )
        need = limits.format_bytes(limits.estimate_bytes(self.channels, frames))
        return AudioError(
            f"too large to load into memory ({what}{frames} frames x {self.channels} channels"
            f" = {need}; the limit is {limits.format_bytes(limits.MAX_ARRAY_BYTES)})",
            path=self.path,
        )


def _frame_limit(
    max_seconds: float | None, sr: int, target_sr: int | None, channels: int, path: Path
) -> _FrameLimit:
    """Most frames :func:`load_audio` may hold (time limit, and memory of the result)."""
    by_bytes = limits.MAX_ARRAY_BYTES // (4 * channels)
    if target_sr is not None and target_sr > sr:  # the resampled copy is larger
        by_bytes = by_bytes * sr // target_sr
    frames = by_bytes
    if max_seconds is not None:
        frames = min(frames, int(max_seconds * sr))
    return _FrameLimit(max(frames, 1), max_seconds, sr, channels, path)


def resample(y: np.ndarray, orig_sr: int, target_sr: int) -> np.ndarray:
    """Resample along the last axis with soxr (``res_type="soxr_hq"``).

    Parameters
    ----------
    y : np.ndarray, shape (..., n_samples)
    orig_sr, target_sr : int
        Sample rates in Hz.

    Returns
    -------
    np.ndarray, shape (..., ceil(n_samples * target_sr / orig_sr)), float32
        ``y`` itself (as float32) when the rates are equal.
    """
    orig_sr = _check_sr(orig_sr, "orig_sr")
    target_sr = _check_sr(target_sr, "target_sr")
    y = np.asarray(y)
    if not np.issubdtype(y.dtype, np.floating):
        raise ParameterError(f"samples must be floating point, got dtype {y.dtype}")
    if orig_sr == target_sr:
        return y.astype(np.float32, copy=False)
    n_out = int(np.ceil(y.shape[-1] * target_sr / orig_sr))
    if y.shape[-1] == 0:
        return np.zeros((*y.shape[:-1], 0), dtype=np.float32)
    import librosa

    out = librosa.resample(
        y.astype(np.float32, copy=False),
        orig_sr=orig_sr,
        target_sr=target_sr,
        res_type="soxr_hq",
        axis=-1,
    )
    out = librosa.util.fix_length(out, size=n_out, axis=-1)
    return np.ascontiguousarray(out, dtype=np.float32)


# --------------------------------------------------------------------------------------------
# atomic writing (the one write path: audio, models, plots)


#: libsndfile's ``SFC_SET_ADD_PEAK_CHUNK`` (sndfile.h), which soundfile does not wrap.
_SFC_SET_ADD_PEAK_CHUNK = 0x1050


def no_peak_chunk(f: sf.SoundFile) -> sf.SoundFile:
    """``f`` (just opened for writing) without the PEAK chunk libsndfile adds to float WAV and
    AIFF files: it holds the time of writing, so the same samples written a second later were
    other bytes, and a seed must reproduce the files, not only their samples."""
    with contextlib.suppress(AttributeError, TypeError):  # soundfile's internals moved
        sf._snd.sf_command(f._file, _SFC_SET_ADD_PEAK_CHUNK, sf._ffi.NULL, 0)
    return f


def _host_tag() -> str:
    return f"{zlib.crc32(socket.gethostname().encode('utf-8', 'replace')) & 0xFFFFFF:06x}"


_TEMP_RE = re.compile(r"\.([0-9a-f]{6})-(\d+)-[0-9a-f]{8}" + re.escape(TEMP_SUFFIX) + r"$")


def _temp_path(path: Path) -> Path:
    # name: .{name}.{host}-{pid}-{random}.nmfsep-tmp  (hidden, never ends with the extension);
    # the name part is cut to 100 *bytes* so that the temp name is within NAME_MAX too
    name = os.fsdecode(os.fsencode(path.name)[:100])
    tag = f"{_host_tag()}-{os.getpid()}-{secrets.token_hex(4)}"
    return path.with_name(f".{name}.{tag}{TEMP_SUFFIX}")


def _prepare_parent(path: Path) -> None:
    parent = path.parent
    if parent.is_dir():
        return
    for ancestor in (parent, *parent.parents):  # name the file that is in the way, if any
        if ancestor.exists() or ancestor.is_symlink():
            if not ancestor.is_dir():
                raise NotADirectoryError(errno.ENOTDIR, "not a directory", str(ancestor))
            break
    parent.mkdir(parents=True, exist_ok=True)


class Protected:
    """A set of files (by device and inode) that a command must never write over: its inputs.

    Build it once per command from the input paths (missing or unreadable paths are skipped)
    and pass it as ``protect=`` to :func:`atomic_open`, :func:`write_audio` or
    :meth:`nmfsep.model.NMFModel.save`; a plain collection of paths works too (stat-ed at each
    call). Identity is by ``st_dev``/``st_ino`` following symbolic links, so a symbolic or hard
    link to an input is recognised as the input.
    """

    def __init__(self, paths: Iterable[PathLike] = ()) -> None:
        self._ids: dict[tuple[int, int], str] = {}
        for p in paths:
            self.add(p)

    def add(self, path: PathLike) -> None:
        """Protect ``path`` too (ignored when it does not exist)."""
        try:
            st = os.stat(path)
        except (OSError, ValueError):
            return
        self._ids.setdefault((st.st_dev, st.st_ino), os.fspath(path))

    def __len__(self) -> int:
        return len(self._ids)

    def match(self, st: os.stat_result) -> str | None:
        """The protected path that is the file ``st`` describes, if any."""
        return self._ids.get((st.st_dev, st.st_ino))


def _as_protected(protect: Protected | Collection[PathLike] | None) -> Protected | None:
    if protect is None:
        return None
    if isinstance(protect, Protected):
        return protect if len(protect) else None
    if isinstance(protect, (str, bytes, os.PathLike)):
        protect = [protect]
    prot = Protected(protect)
    return prot if len(prot) else None


def check_target(
    path: PathLike,
    *,
    protect: Protected | Collection[PathLike] | None = None,
    error: type[NmfsepError] = AudioError,
) -> None:
    """Refuse to write ``path`` when doing so would destroy something that is not an old output.

    Raises ``error`` (one line, naming ``path``) when the path is too long, when something that
    is not a regular file is there (a directory, FIFO, character or block device, socket; also
    behind a symbolic link), or when it is one of ``protect`` (the command's inputs; compared by
    device and inode, through symbolic and hard links). A missing path, or an existing regular
    file that is not protected, passes. :func:`atomic_open` calls it before writing and again
    just before the rename.
    """
    dest = Path(path)
    _check_path_length(dest, error)
    try:
        lst = os.lstat(dest)
    except FileNotFoundError:
        return
    except NotADirectoryError:
        return  # a file is in the way of the parent: reported when the parent is prepared
    except OSError as exc:
        raise error(f"cannot write: {_os_message(exc)}", path=dest) from None
    st = lst
    if stat.S_ISLNK(lst.st_mode):
        try:
            st = os.stat(dest)
        except FileNotFoundError:
            return  # a dangling link: os.replace replaces the link itself
        except OSError as exc:
            raise error(f"cannot write: {_os_message(exc)}", path=dest) from None
    if stat.S_ISDIR(st.st_mode):
        raise error("cannot write: is a directory", path=dest)
    kind = _file_kind(st.st_mode)
    if kind is not None:
        raise error(f"exists and is not a regular file ({kind}); refusing to replace it", path=dest)
    prot = _as_protected(protect)
    if prot is not None:
        hit = prot.match(st)
        if hit is not None:
            same = os.fspath(dest) == hit
            also = "" if same else f" ({hit})"
            raise error(f"is an input of this command{also}; refusing to write over it", path=dest)


class _GuardedFile(io.FileIO):
    """The temporary file: a write that fails is remembered and reported as "0 bytes written".

    libsndfile calls ``write`` from a cffi callback, where an exception would only be printed
    (a traceback on stderr) and the failure lost (FLAC even reports success). Returning 0 makes
    libsndfile see a short write, and :func:`atomic_open` raises the remembered error once, as
    one line naming the destination.
    """

    failure: OSError | None = None

    def write(self, data: Any) -> int:
        if self.failure is not None:
            return 0
        view = memoryview(data).cast("B")
        done = 0
        try:
            # all of it: a nearly full disk writes part of a block and only the next write
            # says ENOSPC (libsndfile would take the part as a failure with no reason given)
            while done < len(view):
                n = self._raw_write(view[done:])
                if not n:
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
                done += n
        except OSError as exc:
            self.failure = exc
            return 0
        return done

    def _raw_write(self, data: Any) -> int | None:
        """The actual write (a seam for tests that simulate a full disk)."""
        return super().write(data)


@contextlib.contextmanager
def atomic_open(
    path: PathLike,
    *,
    protect: Protected | Collection[PathLike] | None = None,
    error: type[NmfsepError] | None = None,
    replace: bool = True,
) -> Iterator[BinaryIO]:
    """Open ``path`` for binary writing, atomically, after checking the target.

    The target is checked first (:func:`check_target`: not a directory, FIFO, device or socket,
    not one of ``protect``, path not too long). Yields a file object on a hidden temporary file
    in the destination directory (created with its parents if needed). When the ``with`` block
    ends normally the data are flushed and fsync-ed, the target is checked again and the file
    is renamed over ``path`` (:func:`os.replace`); if the block raises anything (including
    ``KeyboardInterrupt``) the temporary file is removed and ``path`` is left untouched.

    A write to the temporary file that fails (disk full, quota, I/O error) is remembered: the
    ``with`` block sees a short write (libsndfile then fails, or goes on), and at the end the
    remembered error is raised as one line naming ``path`` (e.g. ``no space left on device``),
    whatever the block raised because of it.

    Parameters
    ----------
    path : path
        Destination.
    protect : Protected or collection of paths, optional
        Files that must not be written over (the command's inputs).
    error : NmfsepError subclass, optional
        Class of the refusals and of the converted OS errors (``AudioError`` by default;
        :meth:`nmfsep.model.NMFModel.save` uses ``ModelError``).
    replace : bool
        With ``False`` (a command run without ``--overwrite``), a file that appeared at
        ``path`` while this one was written (another run's) is never replaced: the file is put
        in place with :func:`os.link`, which fails when the name exists, and the error says so.

    Raises
    ------
    AudioError (or ``error``)
        Refused target, a write that failed, or the temporary file could not be created,
        synced or renamed (one line; :func:`write_error` words).
    """
    cls: type[NmfsepError] = AudioError if error is None else error
    dest = Path(path)
    check_target(dest, protect=protect, error=cls)
    try:
        _prepare_parent(dest)
        tmp = _temp_path(dest)
        fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    except OSError as exc:
        raise write_error(exc, dest, cls) from None
    fh = _GuardedFile(fd, "r+", closefd=True)
    try:
        try:
            yield fh
        except Exception:
            if fh.failure is not None:  # what the block saw was our failed write: say that
                raise write_error(fh.failure, dest, cls) from None
            raise
        if fh.failure is not None:
            raise write_error(fh.failure, dest, cls)
        try:
            fh.flush()
            os.fsync(fh.fileno())
        except OSError as exc:
            raise write_error(exc, dest, cls) from None
        placed = os.fstat(fh.fileno())
        fh.close()
        check_target(dest, protect=protect, error=cls)  # again: it may have changed meanwhile
        # recorded first: a signal right after the rename must still find it ours
        PLACED.append((placed.st_dev, placed.st_ino))
        try:
            if replace:
                os.replace(tmp, dest)
            else:
                _place_new(tmp, dest, cls)
        except OSError as exc:
            raise write_error(exc, dest, cls) from None
    except BaseException:
        with contextlib.suppress(OSError):
            fh.close()
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError):  # make the rename itself durable (best effort)
        dfd = os.open(dest.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)


#: Why a file is not put in place without ``--overwrite`` (:func:`_place_new`).
_APPEARED = "exists: another run wrote it while this one worked (use --overwrite to replace it)"


def _place_new(tmp: Path, dest: Path, cls: type[NmfsepError]) -> None:
    """Rename ``tmp`` to ``dest`` unless ``dest`` exists (checked and done in one step)."""
    try:
        os.link(tmp, dest)  # fails with EEXIST if another run put a file there meanwhile
    except FileExistsError:
        raise cls(_APPEARED, path=dest) from None
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK):
            raise
        # a file system without hard links (FAT, some network shares): the check and the
        # rename are two steps there
        if os.path.lexists(dest):
            raise cls(_APPEARED, path=dest) from None
        os.replace(tmp, dest)
        return
    os.unlink(tmp)


#: (device, inode) of every file this process put in place through :func:`atomic_open`, in
#: order: what a failed job may remove again (``batch.run_job``), and nothing else — a file
#: another run finished meanwhile at the same path has another inode.
PLACED: list[tuple[int, int]] = []


def write_error(exc: OSError, dest: Path, cls: type[E]) -> E:
    """Turn an :class:`OSError` raised while writing ``dest`` into a one-line nmfsep error.

    Disk full (``ENOSPC``, ``EDQUOT``, ``EFBIG``) reads ``"PATH: no space left on device"``
    (``disk quota exceeded`` / ``file too large for the file system``); other errors
    ``"PATH: cannot write: <words>"`` from the OS message table. The temporary file's name is
    never shown.
    """
    if exc.errno in _DISK_FULL:
        return cls(_OS_MESSAGES.get(exc.errno or 0, "no space left on device"), path=dest)
    if isinstance(exc, (NotADirectoryError, FileExistsError)):
        where = Path(os.fsdecode(exc.filename)) if exc.filename else dest.parent
        return cls("cannot create output: a file is in the way (not a directory)", path=where)
    if isinstance(exc, IsADirectoryError):
        return cls("cannot write: is a directory", path=dest)
    if isinstance(exc, PermissionError):
        name = os.fsdecode(exc.filename) if exc.filename else ""
        if not name or name.endswith(TEMP_SUFFIX):  # never show the user our temporary name
            return cls("cannot write: permission denied (directory not writable)", path=dest)
        return cls("cannot write: permission denied", path=Path(name))
    return cls(f"cannot write: {_os_message(exc)}", path=dest)


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    # A zombie (killed, not yet reaped: an orphaned worker under a PID 1 that does not reap,
    # as in many containers) still answers kill(0) but writes nothing any more.
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            state = fh.read().rsplit(b")", 1)[-1].split()[:1]
    except OSError:
        return True
    return state != [b"Z"]


def cleanup_temp_files(
    directories: PathLike | Iterable[PathLike], *, min_age_other_hosts: float = 3600.0
) -> int:
    """Remove stale temporary files that a killed run's atomic writes left in ``directories``.

    Only names of nmfsep's own pattern, ``.{name}.{host}-{pid}-{8 hex digits}.nmfsep-tmp``,
    are touched, and each directory is looked at alone (not searched recursively): a user's
    file that merely ends in ``.nmfsep-tmp``, or anything beside the output area, is never
    removed. A temporary file whose writer is a live process on this machine is kept (a
    concurrent run may still be writing it); one written on another machine (shared file
    system) is only removed when older than ``min_age_other_hosts`` seconds. Errors (missing
    directory, permissions) are ignored.

    Parameters
    ----------
    directories : path or iterable of paths
        The directories a run writes into.

    Returns
    -------
    int
        Number of files removed.
    """
    if isinstance(directories, (str, bytes, os.PathLike)):
        directories = [directories]
    here, now, removed = _host_tag(), time.time(), 0
    for root in dict.fromkeys(Path(os.fsdecode(d)) for d in directories):
        try:
            names = [e.name for e in os.scandir(root) if e.is_file(follow_symlinks=False)]
        except OSError:
            continue
        for fname in names:
            m = _TEMP_RE.search(fname)
            if m is None or not fname.startswith("."):
                continue
            fpath = root / fname
            host, pid = m.group(1), int(m.group(2))
            if host == here:
                if _pid_alive(pid):
                    continue
            else:
                try:
                    if now - fpath.lstat().st_mtime < min_age_other_hosts:
                        continue
                except OSError:
                    continue
            try:
                fpath.unlink()
                removed += 1
            except OSError:
                continue
    return removed


# --------------------------------------------------------------------------------------------
# writing


def _resolve_format(path: Path, format: str | None, subtype: str | None) -> tuple[str, str]:
    ext = path.suffix.lower().lstrip(".")
    if format is None:
        if ext not in _WRITE_FORMATS:
            known = ", ".join(sorted({"wav", "flac", "ogg"} | set(_WRITE_FORMATS)))
            raise ParameterError(
                f"cannot tell the output format from the extension {path.suffix or '(none)'!r}"
                f" (known: {known}); pass format=",
                path=path,
            )
        fmt, default_subtype = _WRITE_FORMATS[ext]
    else:
        fmt = str(format).upper()
        default_subtype = next((d for f, d in _WRITE_FORMATS.values() if f == fmt), None)
    if fmt not in sf.available_formats():
        raise ParameterError(f"audio format {fmt!r} is not supported by libsndfile", path=path)
    if subtype is None:
        subtype = default_subtype or sf.default_subtype(fmt)
    subtype = str(subtype).upper()
    if not sf.check_format(fmt, subtype):
        raise ParameterError(f"subtype {subtype!r} cannot be written in {fmt} files", path=path)
    return fmt, subtype


_FLOAT_SUBTYPES = {"FLOAT", "DOUBLE", "VORBIS", "OPUS", "MPEG_LAYER_I", "MPEG_LAYER_II"}
_FLOAT_SUBTYPES |= {"MPEG_LAYER_III"}

#: ``clip_mode`` values of :func:`write_audio` / :func:`plan_clip`.
CLIP_MODES = ("float", "rescale", "clamp")


@dataclass(frozen=True)
class ClipPlan:
    """What :func:`write_audio` does with samples beyond full scale (see :func:`plan_clip`).

    Attributes
    ----------
    action : {"none", "float", "rescale", "clamp"}
        ``"none"``: nothing clips (or the subtype is floating point / lossy); ``"float"``: a
        32-bit float subtype is written instead of the integer one; ``"rescale"``: the samples
        are multiplied by ``gain`` (< 1) so that the peak is full scale; ``"clamp"``: samples are
        clipped to [-1, 1] (the waveform is distorted and sources no longer sum to the mixture).
    subtype : str
        The subtype that is written.
    gain : float
        Factor applied to the samples (1.0 unless ``action == "rescale"``).
    peak : float
        The peak the decision was made on.
    """

    action: str
    subtype: str
    gain: float
    peak: float

    def describe(self) -> str:
        """One line for stderr (empty when ``action == "none"``)."""
        over = f"peak {self.peak:.3g} is over full scale"
        if self.action == "float":
            return f"{over}: written as 32-bit float ({self.subtype}) so nothing is clipped"
        if self.action == "rescale":
            db = 20 * math.log10(self.gain) if self.gain > 0 else -math.inf
            return f"{over}: scaled by {self.gain:.4g} ({db:.1f} dB) so nothing is clipped"
        if self.action == "clamp":
            return f"{over}: samples clipped to full scale"
        return ""


def plan_clip(peak: float, *, format: str, subtype: str, clip_mode: str = "float") -> ClipPlan:
    """Decide what to do with samples of absolute peak ``peak`` written as ``format/subtype``.

    Integer subtypes cannot hold values beyond [-1, 1]. ``clip_mode``:

    * ``"float"`` (default): write the float subtype ``FLOAT`` instead, where the format has one
      (WAV, AIFF, CAF, W64, RF64, AU): the file holds the exact samples, so separated sources
      still sum to the mixture. Formats without float samples (FLAC) fall back to ``"rescale"``.
    * ``"rescale"``: scale by ``gain = 1 / peak``. Give every source of one input the same
      ``peak`` (the largest of them), so they get the same gain and still sum to the (scaled)
      mixture.
    * ``"clamp"``: clip to [-1, 1] (the old behaviour).

    Float and lossy subtypes, and peaks within full scale, give ``action == "none"``.

    Raises
    ------
    ParameterError
        Unknown ``clip_mode`` or a peak that is not a finite number >= 0.
    """
    if clip_mode not in CLIP_MODES:
        raise ParameterError(f"clip_mode must be one of {', '.join(CLIP_MODES)}, got {clip_mode!r}")
    peak = float(peak)
    if not math.isfinite(peak) or peak < 0:
        raise ParameterError(f"peak must be a finite number >= 0, got {peak!r}")
    subtype = str(subtype).upper()
    fmt = str(format).upper()
    if subtype in _FLOAT_SUBTYPES or peak <= 1.0:
        return ClipPlan("none", subtype, 1.0, peak)
    mode = clip_mode
    if mode == "float":
        if sf.check_format(fmt, "FLOAT"):
            return ClipPlan("float", "FLOAT", 1.0, peak)
        mode = "rescale"
    if mode == "rescale":
        return ClipPlan("rescale", subtype, 1.0 / peak, peak)
    return ClipPlan("clamp", subtype, 1.0, peak)


def _peak(y: np.ndarray) -> float:
    """Largest finite absolute sample (block by block: no full-size temporary)."""
    peak = 0.0
    for start in range(0, y.shape[1], _BLOCK_FRAMES):
        block = y[:, start : start + _BLOCK_FRAMES]
        if block.size:
            with np.errstate(invalid="ignore"):
                m = float(np.nanmax(np.abs(block), initial=0.0))
            if math.isfinite(m):
                peak = max(peak, m)
    return peak


def write_audio(
    path: PathLike,
    y: np.ndarray,
    sr: int,
    *,
    subtype: str | None = None,
    format: str | None = None,
    clip_mode: str = "float",
    peak: float | None = None,
    protect: Protected | Collection[PathLike] | None = None,
    on_clip: Callable[[ClipPlan], Any] | None = None,
    replace: bool = True,
) -> Path:
    """Write samples to an audio file, atomically, through the one safe write path.

    Parameters
    ----------
    path : str or os.PathLike
        Destination; parent directories are created. An existing regular file is replaced
        (deciding whether to overwrite is the caller's job); a directory, FIFO, device or socket
        there, or one of ``protect``, is refused.
    y : np.ndarray, shape (n_channels, n_samples) or (n_samples,), floating point
    sr : int
        Sample rate in Hz.
    subtype : str, optional
        libsndfile subtype (``"PCM_16"``, ``"PCM_24"``, ``"FLOAT"``, ...). Default: ``PCM_16`` for
        WAV/FLAC/AIFF, Vorbis for OGG, libsndfile's default otherwise.
    format : str, optional
        libsndfile major format (``"WAV"``, ``"FLAC"``, ``"OGG"``, ...); default from the
        extension.
    clip_mode : {"float", "rescale", "clamp"}
        What to do when an integer subtype would clip (:func:`plan_clip`): default ``"float"``
        (WAV written as 32-bit float; FLAC, which has no float samples, rescaled).
    peak : float, optional
        The peak to decide on (default: the peak of ``y``). Pass the largest peak of all the
        sources of one input so that they all get the same decision and gain.
    protect : Protected or collection of paths, optional
        The command's inputs: never written over (also through links).
    on_clip : callable(ClipPlan), optional
        Called once, before writing, when the plan's action is not ``"none"`` (so the caller
        can say it on stderr).
    replace : bool
        ``False``: a file that appeared at ``path`` meanwhile is never replaced (see
        :func:`atomic_open`).

    Returns
    -------
    pathlib.Path
        ``path``.

    Raises
    ------
    AudioError
        The file cannot be written (directory not writable, a file in the way, not a regular
        file, an input of the command, disk full, path too long, ...) or ``y`` holds NaN/Inf.
    ParameterError
        Unknown format/extension, incompatible subtype, bad ``sr``, ``clip_mode`` or ``y``
        shape/dtype, too many channels.

    Notes
    -----
    The file is written to a hidden temporary file in the same directory and renamed (see
    :func:`atomic_open`); on any failure the temporary file is removed.
    """
    dest = Path(path)
    check_target(dest, protect=protect)  # first: a refused target is not a format question
    sr = _check_sr(sr)
    y = np.asarray(y)
    if y.ndim == 1:
        y = y[np.newaxis, :]
    if y.ndim != 2 or y.shape[0] < 1:
        raise ParameterError(
            f"samples must have shape (n_channels, n_samples) or (n_samples,), got {y.shape}",
            path=dest,
        )
    if not np.issubdtype(y.dtype, np.floating):
        raise ParameterError(f"samples must be floating point, got dtype {y.dtype}", path=dest)
    limits.check_channels(y.shape[0], path=dest)
    fmt, subtype = _resolve_format(dest, format, subtype)
    plan = plan_clip(_peak(y) if peak is None else peak, format=fmt, subtype=subtype,
                     clip_mode=clip_mode)  # fmt: skip
    subtype = plan.subtype
    clip = subtype not in _FLOAT_SUBTYPES
    dtype = np.float64 if y.dtype == np.float64 else np.float32
    gain = dtype(plan.gain)
    channels, n = y.shape
    if plan.action != "none" and on_clip is not None:
        on_clip(plan)
    try:
        with atomic_open(dest, protect=protect, replace=replace) as fh:
            with no_peak_chunk(
                sf.SoundFile(fh, "w", samplerate=sr, channels=channels, format=fmt, subtype=subtype)
            ) as out:
                for start in range(0, n, _BLOCK_FRAMES):
                    # a copy: for one channel .T is already contiguous, and the caller's
                    # samples must not be scaled or clipped in place
                    block = np.array(y[:, start : start + _BLOCK_FRAMES].T, dtype, order="C")
                    if not np.isfinite(block).all():
                        raise AudioError("refusing to write NaN or infinite samples", path=dest)
                    if plan.gain != 1.0:
                        np.multiply(block, gain, out=block)
                    if clip:
                        np.clip(block, -1.0, 1.0, out=block)
                    out.write(block)
    except (AudioError, ParameterError):
        raise
    except OSError as exc:
        raise write_error(exc, dest, AudioError) from None
    except (sf.SoundFileError, RuntimeError, ValueError, TypeError, AssertionError) as exc:
        raise AudioError(f"cannot write audio ({sf_message(exc)})", path=dest) from None
    return dest


# --------------------------------------------------------------------------------------------
# finding files


def find_audio_files(directory: PathLike, *, recursive: bool = False) -> list[Path]:
    """Audio files in ``directory`` (by extension, see :data:`AUDIO_EXTENSIONS`), sorted.

    Hidden files and directories (name starting with ``"."``) and nmfsep temporary files are
    skipped; with ``recursive=True`` sub-directories are searched too (symbolic links to
    directories are not followed).

    Raises
    ------
    AudioError
        ``directory`` does not exist or is not a directory.
    """
    root = Path(directory)
    if not root.exists():
        raise AudioError("no such directory", path=root)
    if not root.is_dir():
        raise AudioError("is not a directory", path=root)
    try:
        os.listdir(root)
    except OSError as exc:
        raise AudioError(f"cannot list directory: {_os_message(exc)}", path=root) from None
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):  # unreadable sub-directories: skipped
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for fname in filenames:
            if fname.startswith(".") or fname.endswith(TEMP_SUFFIX):
                continue
            fpath = Path(dirpath) / fname
            if fpath.suffix.lower().lstrip(".") in AUDIO_EXTENSIONS and fpath.is_file():
                found.append(fpath)
        if not recursive:
            break
    return sorted(found)
