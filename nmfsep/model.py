"""The nmfsep model: spectral bases per source, and its ``.npz`` file format.

File format (version 2)
-----------------------
A single uncompressed ``.npz`` archive (``numpy.savez``) readable with
``numpy.load(path, allow_pickle=False)``:

* ``W_0``, ``W_1``, ... : float32 arrays of shape ``(context * (n_fft // 2 + 1), k_i)``, the
  bases of each source in the order of ``metadata["sources"]`` (columns normalised, see
  ``w_norm``). With ``context = c`` each column is a spectro-temporal patch of ``c``
  consecutive frames stacked frame by frame (rows ``t * n_freq ... (t + 1) * n_freq - 1`` are
  frame ``t - c // 2``); ``c = 1`` is the classic one-frame spectrum;
* ``metadata`` : a 0-d unicode array holding a JSON object::

    {"format": "nmfsep-model", "format_version": 2,
     "sources": [{"name": "speech", "n_components": 32, "array": "W_0"}, ...],
     "sr": 16000, "n_fft": 1024, "hop_length": 256, "win_length": 1024, "window": "hann",
     "beta": 1.0, "w_norm": "l2", "context": 5, "nmfsep_version": "0.1.0",
     "metadata": {...free JSON: training files and seconds, credits/licenses, ...}}

* ``R_0``, ``R_1``, ... (optional, discriminatively trained models): float32 arrays of the same
  shapes as ``W_i``, each source's *reconstruction* bases; its entry in ``sources`` then names
  it (``"recon_array": "R_0"``). Activations are still inferred with ``W_i`` (the *analysis*
  bases) and the masks are built from ``R_i`` (Weninger et al., Interspeech 2014). Files without
  them are ordinary version-2 files, and readers that do not know ``recon_array`` ignore it.

* ``refiner_W0``, ``refiner_b0``, ... ``refiner_mean``, ``refiner_scale`` (optional): float32
  arrays of a learned mask refiner (:mod:`nmfsep.refine`), described by a top-level
  ``"refiner"`` object (``layers``, ``n_mels``, ``context``, ``fmax``, ``norm_seconds``).
  Readers that do not know it ignore it.

A *refiner file* (``nmfsep/data/trained_refiner.npz``, :func:`trained_refiner`) is the same
kind of archive holding only the ``refiner_*`` arrays, with ``metadata`` ``{"format":
"nmfsep-refiner", "format_version": 1, "refiner": {...}, "metadata": {...credits...}}``; it is
read with the same checks.

Version 2 requires ``context`` (odd, 1..31) and source names that are safe file-name components;
version 1 files (``context`` optional, default 1) are still read.

Loading never unpickles anything: every array header is inspected first, object arrays are
refused, and the sizes, shapes and settings are checked against the archive and the limit table
(:mod:`nmfsep.limits`: sample rate, n_fft, bases per source and in all, bytes) before any data
is read. Lone surrogates (text that is not valid Unicode, e.g. file names that were not UTF-8)
in the free metadata are replaced by U+FFFD, on saving and on loading.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import re
import stat
import zipfile
import zlib
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from nmfsep import limits
from nmfsep.errors import ModelError, NmfsepError
from nmfsep.spectral import STFTConfig

if TYPE_CHECKING:
    from nmfsep.audio import Protected
    from nmfsep.refine import Refiner

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "REFINER_FORMAT_NAME",
    "REFINER_FORMAT_VERSION",
    "NMFModel",
    "check_source_name",
    "default_model",
    "describe_model",
    "load_model",
    "load_refiner",
    "save_refiner",
    "trained_refiner",
]

FORMAT_VERSION = 2
FORMAT_NAME = "nmfsep-model"
REFINER_FORMAT_NAME = "nmfsep-refiner"
REFINER_FORMAT_VERSION = 1
W_NORMS = ("l1", "l2", "none")

# the limits live in nmfsep.limits (one table); these names are kept for old imports
_MAX_ARRAY_BYTES = limits.MAX_MODEL_BYTES
_MAX_METADATA_CHARS = limits.MAX_METADATA_CHARS
_MAX_SOURCES = limits.MAX_SOURCES
_MAX_CONTEXT = limits.MAX_CONTEXT
_SR_RANGE = (limits.MIN_SAMPLE_RATE, limits.MAX_SAMPLE_RATE)
#: a source name is a safe file-name component: a letter or digit first (so never "." or ".."
#: or "-x"), then letters, digits, "_", ".", "+", "-"; no "/", NUL, newline or other control
_NAME_RE = re.compile(r"\w[\w.+\-]*")


#: Range of a basis's largest value: saved bases are normalised (columns of unit norm, values
#: about 0.01-1); a file with bases scaled by 1e38 overflowed float32 in the products.
_BASIS_RANGE = (1e-10, 1e10)


def _check_scale(name: str, W: np.ndarray, what: str) -> None:
    peak = W.max(axis=0)
    low, high = _BASIS_RANGE
    if (peak > high).any() or ((peak > 0) & (peak < low)).any():
        worst = float(peak.max()) if (peak > high).any() else float(peak[peak > 0].min())
        raise ModelError(
            f"source {name!r}: {what} out of range (a column peaks at {worst:.3g}; saved bases "
            f"are normalised, each column's largest value between {low:g} and {high:g})"
        )


def check_source_name(name: object, error: type[NmfsepError] = ModelError) -> str:
    """``name`` if it can be a source's name, else ``error``: it is used as a file name, so
    letters, digits, ``_ . + -``, starting with a letter or digit, at most
    ``limits.MAX_NAME_CHARS`` characters (``train`` checks it before reading any audio)."""
    if isinstance(name, str) and len(name) <= limits.MAX_NAME_CHARS and _NAME_RE.fullmatch(name):
        return name
    shown = ascii(name) if len(repr(name)) <= 80 else ascii(str(name)[:60]) + "..."
    raise error(
        f"bad source name {shown} (a source name is used as a file name: letters, digits, "
        f"'_', '.', '+', '-'; must start with a letter or digit; at most "
        f"{limits.MAX_NAME_CHARS} characters)"
    )


_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if isinstance(obj, (set, frozenset, tuple)):
        return list(obj)
    if isinstance(obj, (_dt.datetime, _dt.date)):
        return obj.isoformat()
    return str(obj)  # informational metadata: keep a readable form of anything else


_SURROGATE_RE = re.compile("[\ud800-\udfff]")


def _sanitise(obj: Any) -> Any:
    """Replace lone surrogates (not valid Unicode: e.g. non-UTF-8 file names) by U+FFFD."""
    if isinstance(obj, str):
        return _SURROGATE_RE.sub("\ufffd", obj)
    if isinstance(obj, list):
        return [_sanitise(x) for x in obj]
    if isinstance(obj, dict):
        return {_sanitise(k): _sanitise(v) for k, v in obj.items()}
    return obj


def _to_jsonable(obj: Any) -> Any:
    """A plain-JSON copy of ``obj`` (numpy scalars, paths, tuples converted, lone surrogates
    replaced); ModelError if not JSON-able."""
    try:
        return _sanitise(json.loads(json.dumps(obj, default=_json_default, allow_nan=False)))
    except (TypeError, ValueError, RecursionError) as exc:
        raise ModelError(f"metadata is not JSON-serialisable ({_one_line(exc)})") from None


def _as_float32(arrays: dict[str, Any]) -> dict[str, Any]:
    return {
        name: np.ascontiguousarray(W, dtype=np.float32)
        if isinstance(W, np.ndarray) and np.issubdtype(W.dtype, np.number)
        else W
        for name, W in arrays.items()
    }


def _one_line(text: object) -> str:
    return " ".join(str(text).split())[:200]


@dataclass
class NMFModel:
    """Spectral bases of one or more sources, with the settings they were learned with.

    Parameters
    ----------
    bases : dict[str, np.ndarray]
        Source name -> bases, shape ``(context * n_freq, k_i)``, non-negative, stored as float32;
        the dict order is the source order. Names are used as output file names: letters,
        digits, ``_ . + -``, starting with a letter or digit, at most 64 characters (so never
        ``"."``, ``".."``, a path, a newline or a control character).
    sr : int
        Sample rate (Hz) the bases were learned at.
    stft : STFTConfig
        STFT settings (``n_freq`` must equal the number of rows of every basis matrix).
    beta : float
        Beta-divergence used for training (and the default for separation).
    w_norm : {"l2", "l1", "none"}
        How the basis columns are normalised.
    context : int
        Frames per basis (odd, >= 1): with ``context = c`` every basis is a spectro-temporal
        patch of ``c`` consecutive frames stacked into ``c * n_freq`` rows (frame ``t - c//2``
        first). ``1`` is the classic one-frame spectrum.
    metadata : dict
        Free JSON-able information: training files and seconds, credits/licenses, ...
    recon : dict[str, np.ndarray], optional
        Reconstruction bases of every source (same names, order and shapes as ``bases``), learned
        by discriminative training: the masks are built from them while the activations are
        inferred with ``bases``. None: the masks use ``bases`` too.
    refiner : nmfsep.refine.Refiner, optional
        A learned mask refiner for the first source (the built-in model has one).

    Raises
    ------
    ModelError
        When the fields are inconsistent (see :meth:`validate`).
    """

    bases: dict[str, np.ndarray]
    sr: int
    stft: STFTConfig = field(default_factory=STFTConfig)
    beta: float = 1.0
    w_norm: str = "l2"
    metadata: dict[str, Any] = field(default_factory=dict)
    context: int = 1
    recon: dict[str, np.ndarray] | None = None
    refiner: Refiner | None = None

    def __post_init__(self) -> None:
        if isinstance(self.bases, dict):
            self.bases = _as_float32(self.bases)
        if isinstance(self.recon, dict):
            self.recon = _as_float32(self.recon)
        self.validate()

    # -- views ---------------------------------------------------------------------------------

    @property
    def source_names(self) -> list[str]:
        """Source names, in order."""
        return list(self.bases)

    @property
    def n_components(self) -> dict[str, int]:
        """Source name -> number of bases."""
        return {name: int(W.shape[1]) for name, W in self.bases.items()}

    @property
    def n_freq(self) -> int:
        """Number of frequency bins of the model's STFT, ``n_fft // 2 + 1``."""
        return self.stft.n_freq

    @property
    def n_rows(self) -> int:
        """Rows of every basis matrix (and of :attr:`W`): ``context * n_freq``."""
        return self.context * self.stft.n_freq

    @property
    def W(self) -> np.ndarray:
        """All bases side by side, shape ``(n_rows, K)``, float32 (a new array)."""
        return np.concatenate(list(self.bases.values()), axis=1).astype(np.float32, copy=False)

    @property
    def W_recon(self) -> np.ndarray | None:
        """All reconstruction bases side by side (like :attr:`W`), or None."""
        if self.recon is None:
            return None
        return np.concatenate([self.recon[n] for n in self.bases], axis=1).astype(
            np.float32, copy=False
        )

    @property
    def discriminative(self) -> bool:
        """Whether the model has reconstruction bases (discriminative training)."""
        return self.recon is not None

    def component_sources(self) -> np.ndarray:
        """Source index of each column of :attr:`W`, int array of shape ``(K,)``."""
        counts = [W.shape[1] for W in self.bases.values()]
        return np.repeat(np.arange(len(counts)), counts)

    # -- checks --------------------------------------------------------------------------------

    def validate(self) -> None:
        """Check that the model is consistent and usable.

        Raises
        ------
        ModelError
            Bad source names, bases not 2-D non-negative finite float arrays with
            ``stft.n_freq`` rows and at least one column, bad ``sr``, ``beta``, ``w_norm`` or
            ``stft``, metadata not JSON-able.
        """
        if not isinstance(self.stft, STFTConfig):
            raise ModelError(f"stft must be an STFTConfig, got {type(self.stft).__name__}")
        if not isinstance(self.bases, dict) or not self.bases:
            raise ModelError("the model has no sources")
        limits.check_count("number of sources", len(self.bases), _MAX_SOURCES, error=ModelError)
        limits.check_n_fft(self.stft.n_fft, error=ModelError)
        if (
            isinstance(self.context, bool)
            or not isinstance(self.context, (int, np.integer))
            or not 1 <= self.context <= _MAX_CONTEXT
            or self.context % 2 == 0
        ):
            raise ModelError(
                f"bad context {self.context!r} (must be an odd integer 1..{_MAX_CONTEXT})"
            )
        self.context = int(self.context)
        n_freq = self.stft.n_freq * self.context
        for name, W in self.bases.items():
            check_source_name(name)
            if not isinstance(W, np.ndarray) or W.dtype != np.float32:
                raise ModelError(f"source {name!r}: bases must be a float array")
            if W.ndim != 2:
                raise ModelError(f"source {name!r}: bases must be 2-D, got shape {W.shape}")
            if W.shape[1] == 0:
                raise ModelError(f"source {name!r} has no bases (0 components)")
            limits.check_count(
                f"source {name!r}: number of bases", W.shape[1], limits.MAX_COMPONENTS,
                error=ModelError,
            )  # fmt: skip
            if W.shape[0] != n_freq:
                raise ModelError(
                    f"source {name!r}: bases have {W.shape[0]} rows but n_fft={self.stft.n_fft}"
                    f" and context={self.context} need {n_freq}"
                )
            if not np.isfinite(W).all():
                raise ModelError(f"source {name!r}: bases contain NaN or infinite values")
            if (W < 0).any():
                raise ModelError(f"source {name!r}: bases contain negative values")
            if not W.any():
                raise ModelError(f"source {name!r}: bases are all zero (it would always be silent)")
            _check_scale(name, W, "bases")
        total = sum(int(W.shape[1]) for W in self.bases.values())
        limits.check_count(
            "number of bases (all sources)",
            total,
            limits.MAX_COMPONENTS_TOTAL,
            minimum=0,
            error=ModelError,
        )
        if isinstance(self.sr, bool) or not isinstance(self.sr, (int, np.integer)):
            raise ModelError(f"bad sample rate {self.sr!r} (must be an integer)")
        self.sr = limits.check_sample_rate(int(self.sr), what="model sample rate", error=ModelError)
        if (
            isinstance(self.beta, bool)
            or not isinstance(self.beta, (int, float, np.integer, np.floating))
            or not math.isfinite(self.beta)
        ):
            raise ModelError(f"bad beta {self.beta!r} (must be a finite number)")
        self.beta = float(self.beta)
        if abs(self.beta) > limits.MAX_ABS_BETA:  # what train and --beta accept
            raise ModelError(
                f"bad beta {self.beta:g} (must be in [-{limits.MAX_ABS_BETA:g}, "
                f"{limits.MAX_ABS_BETA:g}])"
            )
        if self.w_norm not in W_NORMS:
            raise ModelError(f"bad w_norm {self.w_norm!r} (must be one of {', '.join(W_NORMS)})")
        if not isinstance(self.metadata, dict):
            raise ModelError("metadata must be a dict")
        for key in ("separation", "training"):
            # read as mappings of settings: another type would fail far from the file
            if not isinstance(self.metadata.get(key, {}), dict):
                raise ModelError(f"metadata[{key!r}] must be a mapping of settings")
        if self.refiner is not None:
            from nmfsep.refine import Refiner

            if not isinstance(self.refiner, Refiner):
                raise ModelError("refiner must be an nmfsep.refine.Refiner")
        if self.recon is not None:
            if not isinstance(self.recon, dict) or list(self.recon) != list(self.bases):
                raise ModelError("reconstruction bases must name the same sources as the bases")
            for name, R in self.recon.items():
                W = self.bases[name]
                if not isinstance(R, np.ndarray) or R.dtype != np.float32 or R.shape != W.shape:
                    raise ModelError(
                        f"source {name!r}: reconstruction bases must be a float array of the "
                        f"bases' shape {W.shape}"
                    )
                if not np.isfinite(R).all() or (R < 0).any():
                    raise ModelError(
                        f"source {name!r}: reconstruction bases must be finite and non-negative"
                    )
                _check_scale(name, R, "reconstruction bases")

    # -- I/O -----------------------------------------------------------------------------------

    def to_json_metadata(self) -> dict[str, Any]:
        """The JSON object stored in the ``metadata`` entry of the file."""
        from nmfsep import __version__

        user = _to_jsonable(self.metadata)
        user.setdefault("nmfsep_version", __version__)
        # no time of writing: the same training (same --seed) gives the same bytes
        return {
            "format": FORMAT_NAME,
            "format_version": FORMAT_VERSION,
            "sources": [
                {
                    "name": name,
                    "n_components": k,
                    "array": f"W_{i}",
                    **({} if self.recon is None else {"recon_array": f"R_{i}"}),
                }
                for i, (name, k) in enumerate(self.n_components.items())
            ],
            "sr": self.sr,
            "n_fft": self.stft.n_fft,
            "hop_length": self.stft.hop_length,
            "win_length": self.stft.win_length,
            "window": self.stft.window,
            "beta": self.beta,
            "w_norm": self.w_norm,
            "context": self.context,
            "nmfsep_version": __version__,
            **({} if self.refiner is None else {"refiner": self.refiner.to_arrays()[0]}),
            "metadata": user,
        }

    def save(
        self,
        path: str | os.PathLike[str],
        *,
        protect: Protected | Collection[str | os.PathLike[str]] | None = None,
        replace: bool = True,
    ) -> Path:
        """Write the model to ``path`` (exactly that name; ``.npz`` recommended), atomically.

        Goes through the one safe write path (:func:`nmfsep.audio.atomic_open`): the archive is
        written to a hidden temporary file in the same directory (not ending with ``.npz``) and
        renamed; an interrupted save leaves no partial model. A directory, FIFO, device or
        socket at ``path``, or one of ``protect`` (the command's inputs: training audio, a
        model being read), is refused. With ``replace=False`` a file that appeared at ``path``
        meanwhile (another run's) is kept and the save fails.

        Returns
        -------
        pathlib.Path
            ``path``.

        Raises
        ------
        ModelError
            Invalid model or metadata, a refused target, or the file cannot be written (one
            line, e.g. ``"PATH: no space left on device"``).
        """
        from nmfsep.audio import atomic_open

        self.validate()
        dest = Path(path)
        meta = json.dumps(self.to_json_metadata(), ensure_ascii=False, allow_nan=False)
        arrays: dict[str, np.ndarray] = {"metadata": np.array(meta)}
        for i, W in enumerate(self.bases.values()):
            arrays[f"W_{i}"] = np.ascontiguousarray(W, dtype=np.float32)
        for i, R in enumerate((self.recon or {}).values()):
            arrays[f"R_{i}"] = np.ascontiguousarray(R, dtype=np.float32)
        if self.refiner is not None:
            arrays.update(self.refiner.to_arrays()[1])
        try:
            with atomic_open(dest, protect=protect, error=ModelError, replace=replace) as fh:
                np.savez(fh, allow_pickle=False, **arrays)
        except OSError as exc:  # pragma: no cover - atomic_open converts its own errors
            from nmfsep.audio import write_error

            raise write_error(exc, dest, ModelError) from None
        return dest


# ------------------------------------------------------------------------------------------------
# loading


def _read_npy_header(fp: Any) -> tuple[tuple[int, ...], bool, np.dtype[Any]]:
    version = np.lib.format.read_magic(fp)
    if version == (1, 0):
        return np.lib.format.read_array_header_1_0(fp)
    if version == (2, 0):
        return np.lib.format.read_array_header_2_0(fp)
    raise ValueError(f"unsupported .npy version {version}")


def _inspect_members(zf: zipfile.ZipFile) -> dict[str, tuple[tuple[int, ...], np.dtype[Any]]]:
    """Shape and dtype of every array in the archive, without reading any data.

    Raises ModelError for pickled/object arrays and for arrays bigger than the archive allows.
    """
    found: dict[str, tuple[tuple[int, ...], np.dtype[Any]]] = {}
    total = 0
    for info in zf.infolist():
        if info.is_dir():
            continue
        key = info.filename[:-4] if info.filename.endswith(".npy") else info.filename
        with zf.open(info) as fp:
            try:
                shape, _fortran, dtype = _read_npy_header(fp)
            except ValueError:
                raise ModelError(
                    f"not an nmfsep model file (entry {key[:40]!r} is not a numpy array)"
                ) from None
            header_len = fp.tell()
        if dtype.hasobject:
            raise ModelError(
                f"refusing pickled data (object array {key[:40]!r}); not a safe model file"
            )
        n_bytes = math.prod(shape) * dtype.itemsize
        if n_bytes > info.file_size - header_len:
            raise ModelError(
                f"corrupt model file (entry {key[:40]!r} is shorter than its header says)"
            )
        total += n_bytes
        if total > _MAX_ARRAY_BYTES:
            raise ModelError("model file too large (arrays over 1 GiB)")
        found[key] = (shape, dtype)
    return found


def _require(meta: dict[str, Any], key: str, kinds: type | tuple[type, ...]) -> Any:
    if key not in meta:
        raise ModelError(f"model metadata lacks {key!r}")
    value = meta[key]
    if kinds is not object and (isinstance(value, bool) or not isinstance(value, kinds)):
        shown = repr(value) if len(repr(value)) < 60 else type(value).__name__
        raise ModelError(f"model metadata {key!r} has the wrong type ({shown})")
    return value


def _parse_metadata(
    npz: Any,
    members: dict[str, Any],
    fmt_name: str = FORMAT_NAME,
    fmt_version: int = FORMAT_VERSION,
) -> dict[str, Any]:
    if "metadata" not in members:
        raise ModelError("not an nmfsep model file (no 'metadata' entry)")
    shape, dtype = members["metadata"]
    if shape != () or dtype.kind != "U":
        raise ModelError("not an nmfsep model file ('metadata' is not a text entry)")
    if dtype.itemsize // 4 > _MAX_METADATA_CHARS:
        raise ModelError("model metadata too large")
    text = str(npz["metadata"][()])

    def no_constant(word: str) -> Any:  # NaN / Infinity: Python's json extension, not JSON
        raise ModelError(f"model metadata holds {word}, which is not JSON (nmfsep never writes it)")

    try:
        meta = json.loads(text, parse_constant=no_constant)
    except (ValueError, RecursionError):
        raise ModelError("model metadata is not valid JSON") from None
    if not isinstance(meta, dict):
        raise ModelError("model metadata is not a JSON object")
    fmt = meta.get("format")
    if fmt != fmt_name:
        what = "model" if fmt_name == FORMAT_NAME else "refiner"
        raise ModelError(f"not an nmfsep {what} file (format {fmt!r})")
    version = meta.get("format_version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ModelError(f"bad model format version {version!r}")
    if version > fmt_version:
        raise ModelError(
            f"model format version {version} is newer than this nmfsep supports "
            f"({fmt_version}); upgrade nmfsep"
        )
    return meta


def _build_model(npz: Any, members: dict[str, Any], meta: dict[str, Any]) -> NMFModel:
    sources = _require(meta, "sources", list)
    if not sources:
        raise ModelError("the model has no sources")
    limits.check_count("number of sources", len(sources), _MAX_SOURCES, error=ModelError)
    sr = _require(meta, "sr", int)
    limits.check_sample_rate(sr, what="model sample rate", error=ModelError)
    stft_d = {k: _require(meta, k, object) for k in ("n_fft", "hop_length", "win_length")}
    stft_d["window"] = _require(meta, "window", str)
    try:
        limits.check_n_fft(stft_d["n_fft"], what="n_fft", error=ModelError)
    except ModelError as exc:
        raise ModelError(f"bad STFT settings in model: {exc.message}") from None
    try:
        stft = STFTConfig.from_dict(stft_d)
    except NmfsepError as exc:
        raise ModelError(f"bad STFT settings in model: {exc.message}") from None
    beta = _require(meta, "beta", (int, float))
    w_norm = _require(meta, "w_norm", str)
    if meta["format_version"] >= 2:
        context = _require(meta, "context", int)
    else:  # version 1: absent in files written before frame context existed
        context = meta.get("context", 1)
    if (
        not isinstance(context, int)
        or isinstance(context, bool)
        or not 1 <= context <= _MAX_CONTEXT
        or context % 2 == 0
    ):
        shown = repr(context) if len(repr(context)) < 40 else type(context).__name__
        raise ModelError(
            f"model metadata: bad context {shown} (must be an odd integer 1..{_MAX_CONTEXT})"
        )
    user = meta.get("metadata", {})
    if not isinstance(user, dict):
        raise ModelError("model metadata 'metadata' is not a JSON object")
    user = _sanitise(user)
    n_rows = context * (stft.n_fft // 2 + 1)
    total = 0

    bases: dict[str, np.ndarray] = {}
    recon: dict[str, np.ndarray] = {}
    used: set[str] = set()
    for i, src in enumerate(sources):
        if not isinstance(src, dict):
            raise ModelError(f"model metadata: source #{i} is not a JSON object")
        name = _require(src, "name", str)
        check_source_name(name)
        k = _require(src, "n_components", int)
        key = src.get("array", f"W_{i}")
        if not isinstance(key, str) or key == "metadata" or key in used:
            raise ModelError(f"model metadata: source {name!r} has a bad array name {key!r}")
        if name in bases:
            raise ModelError(f"duplicate source name {name!r}")
        if key not in members:
            raise ModelError(f"model file lacks the bases of source {name!r} (entry {key!r})")
        shape, dtype = members[key]
        if dtype.kind != "f":
            raise ModelError(f"source {name!r}: bases must be floating point, not {dtype}")
        if len(shape) != 2:
            raise ModelError(f"source {name!r}: bases must be 2-D, got shape {shape}")
        if shape[1] != k:
            raise ModelError(
                f"source {name!r}: metadata says {k} components but the bases have {shape[1]}"
            )
        if shape[0] != n_rows:
            raise ModelError(
                f"source {name!r}: bases have {shape[0]} rows but n_fft={stft.n_fft} and "
                f"context={context} need {n_rows}"
            )
        limits.check_count(
            f"source {name!r}: number of bases",
            k,
            limits.MAX_COMPONENTS,
            minimum=0,  # 0: refused by NMFModel.validate ("has no bases")
            error=ModelError,
        )
        total += k
        limits.check_count(
            "number of bases (all sources)",
            total,
            limits.MAX_COMPONENTS_TOTAL,
            minimum=0,
            error=ModelError,
        )
        used.add(key)
        bases[name] = np.ascontiguousarray(npz[key], dtype=np.float32)
        rkey = src.get("recon_array")
        if rkey is not None:
            if not isinstance(rkey, str) or rkey == "metadata" or rkey in used:
                raise ModelError(f"model metadata: source {name!r} has a bad array name {rkey!r}")
            if rkey not in members:
                raise ModelError(
                    f"model file lacks the reconstruction bases of source {name!r} (entry {rkey!r})"
                )
            rshape, rdtype = members[rkey]
            if rdtype.kind != "f" or rshape != shape:
                raise ModelError(
                    f"source {name!r}: reconstruction bases must be floating point of shape "
                    f"{shape}, got {rdtype} {rshape}"
                )
            used.add(rkey)
            recon[name] = np.ascontiguousarray(npz[rkey], dtype=np.float32)
    if recon and len(recon) != len(bases):
        raise ModelError("model file has reconstruction bases for some sources only")
    refiner = _load_refiner(npz, members, meta.get("refiner"))
    return NMFModel(
        bases=bases,
        sr=sr,
        stft=stft,
        beta=beta,
        w_norm=w_norm,
        metadata=user,
        context=context,
        recon=recon or None,
        refiner=refiner,
    )


def _load_refiner(npz: Any, members: dict[str, Any], meta: Any) -> Refiner | None:
    """The model's learned refiner, or None; its arrays checked from their headers first."""
    if meta is None:
        return None
    from nmfsep.refine import Refiner

    if not isinstance(meta, dict):
        raise ModelError("model metadata 'refiner' is not a JSON object")
    arrays = {}
    for key in Refiner.array_names(meta):
        if key not in members:
            raise ModelError(f"model file lacks the refiner's {key!r}")
        shape, dtype = members[key]
        if dtype.kind != "f" or len(shape) > 2 or math.prod(shape) > limits.MAX_REFINER_WEIGHTS:
            raise ModelError(f"refiner: {key!r} must be a float vector or matrix (size limited)")
        arrays[key] = npz[key]
    return Refiner.from_arrays(meta, arrays)


def load_model(path: str | os.PathLike[str]) -> NMFModel:
    """Load and validate a model file written by :meth:`NMFModel.save`.

    Nothing is ever unpickled: the file is opened with ``numpy.load(..., allow_pickle=False)``
    after every array header has been checked.

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    NMFModel

    Raises
    ------
    ModelError
        Missing or unreadable file, not an nmfsep model, pickled/object data, missing entries or
        keys, metadata not JSON, unknown format, newer format version, inconsistent shapes,
        NaN/Inf/negative or empty bases, bad sample rate or STFT settings. One-line message.
    """

    def build(npz: Any, members: dict[str, Any]) -> NMFModel:
        return _build_model(npz, members, _parse_metadata(npz, members))

    result: NMFModel = _load_archive(path, build)
    return result


def _load_archive(path: str | os.PathLike[str], build: Any) -> Any:
    """``build(npz, members)`` on the checked archive at ``path`` (every array header inspected
    first, nothing unpickled); every failure one :class:`ModelError` line naming the file."""
    p = Path(path)
    try:
        st = p.stat()
    except FileNotFoundError:
        stdin = " (a model is read from a file, not standard input)" if os.fspath(p) == "-" else ""
        raise ModelError("no such model file" + stdin, path=p) from None
    except OSError as exc:
        raise ModelError(f"cannot access model file ({exc.strerror or exc})", path=p) from None
    if stat.S_ISDIR(st.st_mode):
        raise ModelError("is a directory, not a model file", path=p)
    if not stat.S_ISREG(st.st_mode):
        from nmfsep.audio import _file_kind

        raise ModelError(
            f"is not a regular file ({_file_kind(st.st_mode)}); a model must be a regular file",
            path=p,
        )
    if st.st_size == 0:
        raise ModelError("is empty (0 bytes), not an nmfsep model file", path=p)
    try:
        with open(p, "rb") as fh:
            magic = fh.read(4)
    except PermissionError:
        raise ModelError("cannot read model file: permission denied", path=p) from None
    except OSError as exc:
        raise ModelError(f"cannot read model file ({exc.strerror or exc})", path=p) from None
    if magic not in _ZIP_MAGIC:
        raise ModelError("not an nmfsep model file (not a .npz archive)", path=p)
    try:
        # open the file ourselves: np.load leaks its own handle when the zip is corrupt
        with open(p, "rb") as fh, np.load(fh, allow_pickle=False, max_header_size=10_000) as npz:
            zf = getattr(npz, "zip", None)
            if not isinstance(zf, zipfile.ZipFile):  # pragma: no cover - magic checked
                raise ModelError("not an nmfsep model file (not a .npz archive)")
            return build(npz, _inspect_members(zf))
    except ModelError as exc:
        raise ModelError(exc.message, path=p) from None
    except NmfsepError as exc:  # pragma: no cover - defensive
        raise ModelError(exc.message, path=p) from None
    except MemoryError:
        raise ModelError("model file too large to load", path=p) from None
    except (zipfile.BadZipFile, zlib.error, EOFError):
        raise ModelError("not an nmfsep model file (corrupt .npz archive)", path=p) from None
    except ValueError as exc:
        if "pickle" in str(exc).lower() or "object arrays" in str(exc).lower():
            raise ModelError("refusing pickled data; not a safe model file", path=p) from None
        raise ModelError(f"corrupt model file ({' '.join(str(exc).split())})", path=p) from None
    except Exception as exc:  # anything else from zipfile/numpy on a damaged file
        detail = " ".join(f"{type(exc).__name__}: {exc}".split())[:200]
        raise ModelError(f"corrupt model file ({detail})", path=p) from None


def default_model() -> NMFModel:
    """The built-in model (sources ``speech`` and ``noise``) shipped in ``nmfsep/data``.

    Raises
    ------
    ModelError
        The file is missing from the installation, or invalid.
    """
    result: NMFModel = _packaged(
        "default_model.npz", "the built-in default model", load_model, " or pass a model with -m"
    )
    return result


def _packaged(name: str, what: str, load: Any, advice: str = "") -> Any:
    """``load(path)`` of the file ``name`` shipped in ``nmfsep/data``."""
    from importlib import resources

    ref = resources.files("nmfsep").joinpath("data", name)
    if not ref.is_file():
        raise ModelError(
            f"{what} is missing from this installation (nmfsep/data/{name}); "
            f"reinstall nmfsep{advice}"
        )
    with resources.as_file(ref) as p:
        return load(p)


def load_refiner(path: str | os.PathLike[str]) -> tuple[Refiner, dict[str, Any]]:
    """Load a refiner file (see the module docstring): ``(refiner, metadata)``.

    Raises
    ------
    ModelError
        Everything :func:`load_model` refuses, and a file that is not a refiner file.
    """

    def build(npz: Any, members: dict[str, Any]) -> tuple[Refiner, dict[str, Any]]:
        meta = _parse_metadata(npz, members, REFINER_FORMAT_NAME, REFINER_FORMAT_VERSION)
        refiner = _load_refiner(npz, members, _require(meta, "refiner", dict))
        if refiner is None:  # pragma: no cover - _require gave a dict
            raise ModelError("refiner file without a refiner")
        user = meta.get("metadata", {})
        if not isinstance(user, dict):
            raise ModelError("refiner metadata 'metadata' is not a JSON object")
        return refiner, _sanitise(user)

    result: tuple[Refiner, dict[str, Any]] = _load_archive(path, build)
    return result


def save_refiner(
    path: str | os.PathLike[str], refiner: Refiner, metadata: dict[str, Any] | None = None
) -> Path:
    """Write ``refiner`` and free JSON ``metadata`` as a refiner file, atomically."""
    from nmfsep.audio import atomic_open

    meta = {
        "format": REFINER_FORMAT_NAME,
        "format_version": REFINER_FORMAT_VERSION,
        "refiner": refiner.to_arrays()[0],
        "metadata": _sanitise(dict(metadata or {})),
    }
    arrays: dict[str, np.ndarray] = {
        "metadata": np.array(json.dumps(meta, ensure_ascii=False, allow_nan=False))
    }
    arrays.update(refiner.to_arrays()[1])
    dest = Path(path)
    with atomic_open(dest, error=ModelError) as fh:
        np.savez(fh, allow_pickle=False, **arrays)
    return dest


def trained_refiner() -> tuple[Refiner, dict[str, Any]]:
    """The refiner shipped for models trained by the user (``train --refiner``): learned on
    synthetic mixtures of the training corpus, each separated by per-case models of its own
    speaker and noise recording (``tools/make_trained_refiner.py``). ``(refiner, metadata)``;
    the metadata holds the recipe and the credits of the recordings.

    Raises
    ------
    ModelError
        The file is missing from the installation, or invalid.
    """
    result: tuple[Refiner, dict[str, Any]] = _packaged(
        "trained_refiner.npz", "the trained-model refiner", load_refiner
    )
    return result


def describe_model(model: NMFModel) -> dict[str, Any]:
    """A JSON-able summary of ``model`` (for ``nmfsep info``).

    Returns
    -------
    dict
        ``sources`` (list of ``{"name", "n_components"}``), ``n_components`` (total), ``sr``,
        ``stft`` (n_fft, hop_length, win_length, window), ``n_freq``, ``beta``, ``w_norm``,
        ``metadata`` (training info, credits, versions, as stored).
    """
    return {
        "format_version": FORMAT_VERSION,
        "sources": [{"name": n, "n_components": k} for n, k in model.n_components.items()],
        "n_components": int(sum(model.n_components.values())),
        "sr": model.sr,
        "stft": model.stft.to_dict(),
        "n_freq": model.stft.n_freq,
        "beta": model.beta,
        "w_norm": model.w_norm,
        "context": model.context,
        "discriminative": model.discriminative,
        "refiner": None if model.refiner is None else model.refiner.to_arrays()[0],
        "metadata": _to_jsonable(model.metadata),
    }
