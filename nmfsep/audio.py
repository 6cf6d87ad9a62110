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
  :func:`cleanup_temp_files` removes it on the next run.

Every problem a user can cause is raised as :class:`~nmfsep.errors.AudioError` (or
:class:`~nmfsep.errors.ParameterError` for bad arguments) with a one-line message.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
import socket
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, TypeVar

import numpy as np
import soundfile as sf

from nmfsep.errors import AudioError, NmfsepError, ParameterError

__all__ = [
    "AUDIO_EXTENSIONS",
    "TEMP_SUFFIX",
    "AudioInfo",
    "atomic_open",
    "audio_info",
    "cleanup_temp_files",
    "find_audio_files",
    "load_audio",
    "resample",
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
# helpers


def _one_line(text: object) -> str:
    """Collapse whitespace so that a message is always a single line."""
    return " ".join(str(text).split())


def _sf_detail(exc: BaseException) -> str:
    """The useful part of a libsndfile error message (without "Error opening 'path': ")."""
    msg = _one_line(exc)
    m = re.match(r"Error opening .*?': (.*)$", msg)
    if m:
        msg = m.group(1)
    if msg.startswith("Error : "):
        msg = msg[len("Error : ") :]
    return msg.rstrip(".") or type(exc).__name__


def _os_message(exc: OSError) -> str:
    if isinstance(exc, PermissionError):
        return "permission denied"
    if isinstance(exc, FileNotFoundError):
        return "no such file or directory"
    if isinstance(exc, IsADirectoryError):
        return "is a directory"
    if isinstance(exc, NotADirectoryError):
        return "a component of the path is not a directory"
    if exc.errno == errno.ENOSPC:
        return "no space left on device"
    return _one_line(exc.strerror or exc)


def _check_sr(sr: object, name: str = "sr") -> int:
    if isinstance(sr, bool) or not isinstance(sr, (int, np.integer, float, np.floating)):
        raise ParameterError(f"{name} must be a positive integer (Hz), got {sr!r}")
    if not np.isfinite(sr) or int(sr) != sr or int(sr) <= 0:
        raise ParameterError(f"{name} must be a positive integer (Hz), got {sr!r}")
    return int(sr)


def _check_readable_file(path: Path) -> None:
    """Refuse paths that are not readable, non-empty regular files (clear messages)."""
    try:
        st = path.stat()
    except FileNotFoundError:
        raise AudioError("no such file", path=path) from None
    except NotADirectoryError:
        raise AudioError(
            "no such file (a component of the path is not a directory)", path=path
        ) from None
    except OSError as exc:
        raise AudioError(f"cannot access file: {_os_message(exc)}", path=path) from None
    if path.is_dir():
        raise AudioError("is a directory, not an audio file", path=path)
    if st.st_size == 0:
        raise AudioError("is empty (0 bytes), not an audio file", path=path)
    try:
        with open(path, "rb") as fh:
            fh.read(1)
    except OSError as exc:
        raise AudioError(f"cannot read file: {_os_message(exc)}", path=path) from None


def _open_error(exc: BaseException, path: Path) -> AudioError:
    detail = _sf_detail(exc)
    low = detail.lower()
    if "format not recognised" in low or "format not recognized" in low:
        return AudioError("not an audio file, or a format libsndfile cannot read", path=path)
    if "does not exist or is not a regular file" in low:  # what libsndfile says of broken OGG
        return AudioError("malformed or truncated audio file (cannot be parsed)", path=path)
    if "system error" in low:
        return AudioError("cannot open file (system error)", path=path)
    if "unsupported" in low:
        return AudioError(f"unsupported audio encoding ({detail})", path=path)
    return AudioError(f"malformed or truncated audio header ({detail})", path=path)


def _open_for_reading(path: Path) -> sf.SoundFile:
    _check_readable_file(path)
    try:
        f = sf.SoundFile(os.fspath(path))
    except (sf.SoundFileError, RuntimeError, ValueError, TypeError, OverflowError) as exc:
        raise _open_error(exc, path) from None
    except OSError as exc:  # pragma: no cover - race with the checks above
        raise AudioError(f"cannot open file: {_os_message(exc)}", path=path) from None
    try:
        sr, channels = int(f.samplerate), int(f.channels)
    except Exception:  # pragma: no cover - defensive
        f.close()
        raise AudioError("malformed audio header", path=path) from None
    if sr <= 0 or channels <= 0:
        f.close()
        raise AudioError(
            f"malformed audio header ({channels} channels at {sr} Hz)", path=path
        ) from None
    return f


def _header_truncated(f: sf.SoundFile) -> bool:
    """True when libsndfile noticed that the header promises more data than the file holds."""
    try:
        log = f.extra_info
    except Exception:  # pragma: no cover - defensive
        return False
    return "should be" in log and ("data" in log.lower() or "ssnd" in log.lower())


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
        Number of frames (samples per channel) that can be read.
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
        Missing, unreadable, empty, non-audio or malformed file.
    """
    p = Path(path)
    with _open_for_reading(p) as f:
        sr, channels, frames = int(f.samplerate), int(f.channels), max(int(f.frames), 0)
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

    Returns
    -------
    y : np.ndarray, shape (n_channels, n_samples), float32
        Samples (integer files are scaled to ``[-1, 1)``).
    sr : int
        Sample rate of ``y``.

    Raises
    ------
    AudioError
        Missing file, directory, empty file, not audio, malformed header, no samples,
        undecodable data, NaN or infinite samples.
    ParameterError
        ``sr`` is not a positive integer, ``offset`` negative or ``duration`` not positive.

    Notes
    -----
    A file whose header claims more frames than it holds is read up to the end of the data that
    is present (see :func:`audio_info`, ``truncated``).
    """
    target_sr = None if sr is None else _check_sr(sr)
    if not (isinstance(offset, (int, float, np.number)) and np.isfinite(offset) and offset >= 0):
        raise ParameterError(f"offset must be a number of seconds >= 0, got {offset!r}")
    if duration is not None and not (
        isinstance(duration, (int, float, np.number)) and np.isfinite(duration) and duration > 0
    ):
        raise ParameterError(f"duration must be a number of seconds > 0, got {duration!r}")
    p = Path(path)
    with _open_for_reading(p) as f:
        native_sr, channels = int(f.samplerate), int(f.channels)
        declared = max(int(f.frames), 0)
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
        try:
            y = np.empty((out_channels, declared), dtype=np.float32)
        except (MemoryError, ValueError):
            raise AudioError(
                f"too large to load into memory ({declared} frames x {channels} channels)",
                path=p,
            ) from None
        n = 0
        try:
            while True:
                if duration is not None and n >= declared:
                    break
                want = _BLOCK_FRAMES if n >= declared else min(_BLOCK_FRAMES, declared - n)
                block = f.read(want, dtype="float32", always_2d=True)
                got = block.shape[0]
                if got == 0:
                    break
                if not np.isfinite(block).all():
                    raise AudioError("contains NaN or infinite samples", path=p)
                if n + got > y.shape[1]:  # more data than the header said (rare): grow
                    grown = np.empty((out_channels, max(2 * y.shape[1], n + got)), np.float32)
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
                f"audio data is corrupt or truncated ({_sf_detail(exc)})", path=p
            ) from None
        except MemoryError:
            raise AudioError("too large to load into memory", path=p) from None
    if n == 0:
        raise AudioError("contains no audio samples (0 frames)", path=p)
    if n < y.shape[1]:
        y = np.ascontiguousarray(y[:, :n])
    if target_sr is not None and target_sr != native_sr:
        y = resample(y, native_sr, target_sr)
        return y, target_sr
    return y, native_sr


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
# atomic writing


def _host_tag() -> str:
    return f"{zlib.crc32(socket.gethostname().encode('utf-8', 'replace')) & 0xFFFFFF:06x}"


_TEMP_RE = re.compile(r"\.([0-9a-f]{6})-(\d+)-[0-9a-f]{8}" + re.escape(TEMP_SUFFIX) + r"$")


def _temp_path(path: Path) -> Path:
    # name: .{name}.{host}-{pid}-{random}.nmfsep-tmp  (hidden, never ends with the extension)
    name = path.name[:100]
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


@contextlib.contextmanager
def atomic_open(path: PathLike) -> Iterator[BinaryIO]:
    """Open ``path`` for binary writing, atomically.

    Yields a file object on a hidden temporary file in the destination directory (created with
    its parents if needed). When the ``with`` block ends normally the data are flushed and
    fsync-ed and the file is renamed over ``path`` (:func:`os.replace`); if the block raises
    anything (including ``KeyboardInterrupt``) the temporary file is removed and ``path`` is left
    untouched.

    Raises
    ------
    OSError
        The directory cannot be created or written, ``path`` is a directory, ... (callers turn
        these into :class:`~nmfsep.errors.AudioError` / :class:`~nmfsep.errors.ModelError`).
    """
    dest = Path(path)
    if dest.is_dir():
        raise IsADirectoryError(errno.EISDIR, "is a directory", str(dest))
    _prepare_parent(dest)
    tmp = _temp_path(dest)
    fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "w+b") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, dest)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError):  # make the rename itself durable (best effort)
        dfd = os.open(dest.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)


def write_error(exc: OSError, dest: Path, cls: type[E]) -> E:
    """Turn an :class:`OSError` raised while writing ``dest`` into a one-line nmfsep error."""
    if isinstance(exc, (NotADirectoryError, FileExistsError)):
        where = Path(exc.filename) if exc.filename else dest.parent
        return cls("cannot create output: a file is in the way (not a directory)", path=where)
    if isinstance(exc, IsADirectoryError):
        return cls("cannot write: is a directory", path=dest)
    if isinstance(exc, PermissionError):
        name = os.fspath(exc.filename) if exc.filename else ""
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
    return True


def cleanup_temp_files(directory: PathLike, *, min_age_other_hosts: float = 3600.0) -> int:
    """Remove stale temporary files (``*.nmfsep-tmp``) left under ``directory`` by a killed run.

    Searches recursively (not following symbolic links). A temporary file whose writer is a live
    process on this machine is kept (a concurrent run may still be writing it); one written on
    another machine (shared file system) is only removed when older than
    ``min_age_other_hosts`` seconds. Errors (missing directory, permissions) are ignored.

    Returns
    -------
    int
        Number of files removed.
    """
    root = Path(directory)
    if not root.is_dir():
        return 0
    here, now, removed = _host_tag(), time.time(), 0
    for dirpath, _dirnames, filenames in os.walk(root):
        for fname in filenames:
            if not fname.endswith(TEMP_SUFFIX):
                continue
            fpath = Path(dirpath) / fname
            m = _TEMP_RE.search(fname)
            if m is not None:
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
                if not fpath.is_symlink() and not fpath.is_file():
                    continue
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


def write_audio(
    path: PathLike,
    y: np.ndarray,
    sr: int,
    *,
    subtype: str | None = None,
    format: str | None = None,
) -> Path:
    """Write samples to an audio file, atomically.

    Parameters
    ----------
    path : str or os.PathLike
        Destination; parent directories are created. An existing file is replaced (deciding
        whether to overwrite is the caller's job).
    y : np.ndarray, shape (n_channels, n_samples) or (n_samples,), floating point
    sr : int
        Sample rate in Hz.
    subtype : str, optional
        libsndfile subtype (``"PCM_16"``, ``"PCM_24"``, ``"FLOAT"``, ...). Default: ``PCM_16`` for
        WAV/FLAC/AIFF, Vorbis for OGG, libsndfile's default otherwise.
    format : str, optional
        libsndfile major format (``"WAV"``, ``"FLAC"``, ``"OGG"``, ...); default from the
        extension.

    Returns
    -------
    pathlib.Path
        ``path``.

    Raises
    ------
    AudioError
        The file cannot be written (directory not writable, a file in the way, disk full, ...)
        or ``y`` holds NaN/Inf.
    ParameterError
        Unknown format/extension, incompatible subtype, bad ``sr`` or bad ``y`` shape/dtype.

    Notes
    -----
    For integer (PCM) subtypes the samples are clipped to ``[-1, 1]``. The file is written to a
    hidden temporary file in the same directory and renamed (see :func:`atomic_open`).
    """
    dest = Path(path)
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
    fmt, subtype = _resolve_format(dest, format, subtype)
    clip = subtype not in _FLOAT_SUBTYPES
    dtype = np.float64 if y.dtype == np.float64 else np.float32
    channels, n = y.shape
    try:
        with atomic_open(dest) as fh:
            with sf.SoundFile(
                fh, "w", samplerate=sr, channels=channels, format=fmt, subtype=subtype
            ) as out:
                for start in range(0, n, _BLOCK_FRAMES):
                    block = np.ascontiguousarray(y[:, start : start + _BLOCK_FRAMES].T, dtype)
                    if not np.isfinite(block).all():
                        raise AudioError("refusing to write NaN or infinite samples", path=dest)
                    if clip:
                        np.clip(block, -1.0, 1.0, out=block)
                    out.write(block)
    except (AudioError, ParameterError):
        raise
    except OSError as exc:
        raise write_error(exc, dest, AudioError) from None
    except (sf.SoundFileError, RuntimeError, ValueError, TypeError) as exc:
        raise AudioError(f"cannot write audio ({_sf_detail(exc)})", path=dest) from None
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
