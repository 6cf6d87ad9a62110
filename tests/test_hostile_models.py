"""Hostile model files and model saves (nmfsep.model with nmfsep.limits and the safe write path).

Contract: a clean one-line :class:`ModelError` naming the file, before any big allocation; the
file is never unpickled; saving refuses non-regular targets and the command's inputs and turns
a full disk into one line, leaving no temporary file.
"""

from __future__ import annotations

import errno
import hashlib
import io
import json
import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import nmfsep.audio as audio
from nmfsep import limits
from nmfsep.audio import TEMP_SUFFIX
from nmfsep.errors import ModelError
from nmfsep.model import FORMAT_VERSION, NMFModel, load_model
from nmfsep.spectral import STFTConfig

STFT = STFTConfig(n_fft=64, hop_length=16)
N_FREQ = 33


def small_model(context: int = 1) -> NMFModel:
    rng = np.random.default_rng(0)
    return NMFModel(
        bases={
            "speech": rng.random((context * N_FREQ, 3)),
            "noise": rng.random((context * N_FREQ, 2)),
        },
        sr=8000,
        stft=STFT,
        context=context,
        metadata={"note": "test"},
    )


def raw(model: NMFModel) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    meta = model.to_json_metadata()
    arrays = {f"W_{i}": np.asarray(W) for i, W in enumerate(model.bases.values())}
    return meta, arrays


def write_npz(path: Path, meta: Any, arrays: dict[str, np.ndarray], *, compressed: bool = False,
              meta_array: np.ndarray | None = None) -> Path:  # fmt: skip
    text = meta if isinstance(meta, str) else json.dumps(meta)
    entries = {"metadata": np.array(text) if meta_array is None else meta_array, **arrays}
    (np.savez_compressed if compressed else np.savez)(path, **entries)
    return path


def refused(path: Path, *needles: str) -> ModelError:
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    with pytest.raises(ModelError) as info:
        load_model(path)
    text = str(info.value)
    assert "\n" not in text and text.startswith(str(path)), text
    for needle in needles:
        assert needle in text, text
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before
    return info.value


def _edit(**changes: Any) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    meta, arrays = raw(small_model())
    meta.update(changes)
    return meta, arrays


META_CASES: dict[str, tuple[dict[str, Any], str]] = {
    "sr 0": ({"sr": 0}, "model sample rate 0 Hz is not valid"),
    "sr 1": ({"sr": 1}, "below the minimum of 1000 Hz"),
    "sr 2^31": ({"sr": 2**31}, "over the limit of 768000 Hz"),
    "sr 10^300": ({"sr": 10**300}, "model sample rate 1e+300 Hz is over the limit"),
    "beta 100": ({"beta": 100}, "bad beta 100 (must be in [-5, 5])"),
    "NaN in user metadata": ({"metadata": {"note": [float("nan")]}}, "metadata holds NaN"),
    "Infinity in user metadata": ({"metadata": {"x": float("-inf")}}, "holds -Infinity"),
    "beta -1e308": ({"beta": -1e308}, "bad beta -1e+308"),
    "n_fft 2^27": ({"n_fft": 2**27, "win_length": 2**27}, "n_fft 134217728 is over the limit"),
    "n_fft 2^17": ({"n_fft": 2**17}, "over the limit of 65536"),
    "context 2": ({"context": 2}, "bad context 2"),
    "context 33": ({"context": 33}, "bad context 33"),
    "context -1": ({"context": -1}, "bad context -1"),
    "context str": ({"context": "5"}, "context"),
    "context missing v2": ({"context": None}, "context"),
    "separation a list": ({"metadata": {"separation": [1, 2]}}, "must be a mapping"),
    "training a string": ({"metadata": {"training": "x"}}, "metadata['training']"),
}


@pytest.mark.parametrize("case", list(META_CASES))
def test_bad_settings(case: str, tmp_path: Path) -> None:
    changes, needle = META_CASES[case]
    meta, arrays = _edit(**changes)
    if changes.get("context", 0) is None:
        del meta["context"]
    refused(write_npz(tmp_path / "m.npz", meta, arrays), needle)


NAMES = {
    "newline": "speech\n",
    "slash": "a/b",
    "dotdot": "..",
    "dot": ".",
    "nul": "sp\x00eech",
    "leading dash": "-speech",
    "empty": "",
    "too long": "s" * 65,
    "surrogate": "sp\ud800ch",
    "tab": "sp\teech",
    "space": "my speech",
    "escape": "\x1b[31mred",
}


@pytest.mark.parametrize("case", list(NAMES))
def test_unsafe_source_names(case: str, tmp_path: Path) -> None:
    meta, arrays = raw(small_model())
    meta["sources"][0]["name"] = NAMES[case]
    err = refused(write_npz(tmp_path / "m.npz", meta, arrays), "bad source name")
    assert "\n" not in str(err) and "\x00" not in str(err) and "\x1b" not in str(err)
    with pytest.raises(ModelError, match="bad source name"):  # and when building one in Python
        NMFModel(bases={NAMES[case]: np.ones((N_FREQ, 1))}, sr=8000, stft=STFT)


def test_absurd_number_of_bases_refused_before_reading(tmp_path: Path) -> None:
    """A ~1 MB compressed model implying 875 000 bases (separation would allocate K x frames)."""
    meta, _ = raw(small_model())
    big = np.zeros((N_FREQ, 875_000), np.float32)
    meta["sources"] = [{"name": "x", "n_components": 875_000, "array": "W_0"}]
    path = write_npz(tmp_path / "m.npz", meta, {"W_0": big}, compressed=True)
    assert path.stat().st_size < 2_000_000
    refused(path, "number of bases 875000 is over the limit of 1024")


def test_too_many_bases_in_all(tmp_path: Path) -> None:
    meta, _ = raw(small_model())
    n = limits.MAX_COMPONENTS_TOTAL // limits.MAX_COMPONENTS + 1
    arrays = {f"W_{i}": np.ones((N_FREQ, limits.MAX_COMPONENTS), np.float32) for i in range(n)}
    meta["sources"] = [{"name": f"s{i}", "n_components": limits.MAX_COMPONENTS,
                        "array": f"W_{i}"} for i in range(n)]  # fmt: skip
    refused(write_npz(tmp_path / "m.npz", meta, arrays, compressed=True), "(all sources)")


def test_rows_not_matching_settings(tmp_path: Path) -> None:
    meta, arrays = raw(small_model())
    meta["n_fft"] = meta["win_length"] = 512  # 257 rows needed, the arrays have 33
    refused(write_npz(tmp_path / "m.npz", meta, arrays), "need 257")


@pytest.mark.parametrize(
    ("dtype", "needle"),
    [(np.int16, "floating point"), (np.complex64, "floating point"), (np.bool_, "floating point"),
     (np.uint8, "floating point")],
)  # fmt: skip
def test_wrong_dtypes(dtype: Any, needle: str, tmp_path: Path) -> None:
    meta, arrays = raw(small_model())
    arrays["W_0"] = arrays["W_0"].astype(dtype)
    refused(write_npz(tmp_path / "m.npz", meta, arrays), needle)


def test_all_zero_bases_are_refused(tmp_path: Path) -> None:
    meta, arrays = raw(small_model())
    arrays["W_1"] = np.zeros_like(arrays["W_1"])
    refused(write_npz(tmp_path / "m.npz", meta, arrays), "all zero")


@pytest.mark.parametrize("scale", [1e38, 1e11, 1e-12, 1e-38])
def test_bases_out_of_range_are_refused(scale: float, tmp_path: Path) -> None:
    """Bases scaled by 1e38 overflowed float32 in the products (numpy's warnings, then exit 0);
    a column peaking near 1e-38 would need activations beyond float32."""
    meta, arrays = raw(small_model())
    arrays["W_0"] = (arrays["W_0"] / arrays["W_0"].max(axis=0) * scale).astype(np.float32)
    refused(write_npz(tmp_path / "m.npz", meta, arrays), "source 'speech': bases out of range")


def test_bases_in_range_with_a_zero_column_load(tmp_path: Path) -> None:
    meta, arrays = raw(small_model())
    arrays["W_0"][:, 1] = 0.0
    arrays["W_0"][:, 0] *= 1e-9 / arrays["W_0"][:, 0].max()
    load_model(write_npz(tmp_path / "m.npz", meta, arrays))


def test_float16_bases_are_read_as_float32(tmp_path: Path) -> None:
    meta, arrays = raw(small_model())
    arrays = {k: v.astype(np.float16) for k, v in arrays.items()}
    m = load_model(write_npz(tmp_path / "m.npz", meta, arrays))
    assert m.W.dtype == np.float32


@pytest.mark.parametrize(("value", "needle"), [(np.nan, "NaN"), (np.inf, "infinite"),
                                                (-1.0, "negative")])  # fmt: skip
def test_bad_values(value: float, needle: str, tmp_path: Path) -> None:
    meta, arrays = raw(small_model())
    arrays["W_1"] = arrays["W_1"].copy()
    arrays["W_1"][2, 1] = value
    refused(write_npz(tmp_path / "m.npz", meta, arrays), needle)


def test_zip_bomb_array(tmp_path: Path) -> None:
    """A few KB that would decompress to 4 GB: refused from the headers, nothing inflated."""
    meta, _ = raw(small_model())
    meta["sources"] = [{"name": "x", "n_components": 1 << 25, "array": "W_0"}]
    path = tmp_path / "bomb.npz"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("metadata.npy", _npy(np.array(json.dumps(meta))))
        header = io.BytesIO()
        np.lib.format.write_array_header_1_0(
            header, {"descr": "<f4", "fortran_order": False, "shape": (32, 1 << 25)}
        )
        with zf.open("W_0.npy", "w", force_zip64=True) as fp:
            fp.write(header.getvalue())
            chunk = bytes(1 << 20)
            for _ in range(64):  # 64 MB of zeros (compresses to ~64 KB); the header says 4 GB
                fp.write(chunk)
    assert path.stat().st_size < 1_000_000
    refused(path)


def _npy(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a, allow_pickle=False)
    return buf.getvalue()


def test_metadata_bomb(tmp_path: Path) -> None:
    meta, arrays = raw(small_model())
    huge = np.array("x", dtype=f"<U{limits.MAX_METADATA_CHARS + 1}")
    path = write_npz(tmp_path / "m.npz", meta, arrays, compressed=True, meta_array=huge)
    refused(path, "metadata too large")


def test_pickle_is_never_loaded(tmp_path: Path) -> None:
    meta, arrays = raw(small_model())
    path = tmp_path / "p.npz"
    obj = np.empty(1, dtype=object)
    obj[0] = {"evil": True}
    np.savez(path, metadata=np.array(json.dumps(meta)), W_0=obj, W_1=arrays["W_1"])
    refused(path, "pickled")


def test_lone_surrogates_in_metadata_are_replaced(tmp_path: Path) -> None:
    """Training files whose names are not UTF-8 (surrogate-escaped) must not break the model."""
    m = small_model()
    m.metadata = {"files": [os.fsdecode(b"caf\xe9.wav")], "note": "\udcff"}
    path = m.save(tmp_path / "m.npz")
    back = load_model(path)
    assert back.metadata["files"] == ["caf\ufffd.wav"] and back.metadata["note"] == "\ufffd"
    json.dumps(back.metadata).encode("utf-8")  # printable as UTF-8
    meta, arrays = raw(small_model())
    meta["metadata"] = {"x": "a\ud800b"}  # written by someone else, with a lone surrogate
    loaded = load_model(write_npz(tmp_path / "s.npz", json.dumps(meta), arrays))
    assert loaded.metadata["x"] == "a\ufffdb"


def test_version_1_file_still_loads(tmp_path: Path) -> None:
    """A file written the old way: format_version 1, no context key."""
    meta, arrays = raw(small_model())
    meta["format_version"] = 1
    del meta["context"]
    m = load_model(write_npz(tmp_path / "v1.npz", meta, arrays))
    assert m.context == 1 and m.n_rows == m.n_freq == N_FREQ
    assert FORMAT_VERSION == 2
    saved = m.save(tmp_path / "v2.npz")
    with np.load(saved, allow_pickle=False) as npz:
        assert json.loads(str(npz["metadata"][()]))["format_version"] == 2


def test_n_rows_and_n_freq() -> None:
    m = small_model(context=5)
    assert m.n_freq == N_FREQ and m.n_rows == 5 * N_FREQ == m.W.shape[0]


@pytest.mark.parametrize("kind", ["fifo", "dev_null", "directory"])
def test_model_path_not_a_regular_file(kind: str, tmp_path: Path) -> None:
    if kind == "fifo":
        path = tmp_path / "m.npz"
        os.mkfifo(path)
        needle = "not a regular file (a FIFO"
    elif kind == "dev_null":
        path, needle = Path("/dev/null"), "not a regular file (a character device"
    else:
        path = tmp_path / "m.npz"
        path.mkdir()
        needle = "is a directory"
    with pytest.raises(ModelError, match=needle.replace("(", r"\(")):
        load_model(path)


# ---------------------------------------------------------------------------------------------
# saving


@pytest.mark.parametrize("kind", ["fifo", "char device", "directory", "input", "symlink to input"])
def test_save_refuses_targets(kind: str, tmp_path: Path) -> None:
    src = tmp_path / "train.wav"
    src.write_bytes(b"training audio")
    if kind == "fifo":
        target = tmp_path / "m.npz"
        os.mkfifo(target)
    elif kind == "char device":
        target = Path("/dev/null")
    elif kind == "directory":
        target = tmp_path / "m.npz"
        target.mkdir()
    elif kind == "input":
        target = src
    else:
        target = tmp_path / "m.npz"
        os.symlink(src, target)
    with pytest.raises(ModelError) as info:
        small_model().save(target, protect=[src])
    assert str(info.value).startswith(str(target)) and "\n" not in str(info.value)
    assert src.read_bytes() == b"training audio"
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(TEMP_SUFFIX)]


def test_save_disk_full_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dest = tmp_path / "m.npz"
    small_model().save(dest)
    before = dest.read_bytes()

    def full(self: io.FileIO, data: bytes) -> int:
        if self.tell() + len(data) > 500:
            raise OSError(errno.ENOSPC, "No space left on device")
        return os.write(self.fileno(), data)

    monkeypatch.setattr(audio._GuardedFile, "_raw_write", full)
    with pytest.raises(ModelError) as info:
        small_model().save(dest)
    assert str(info.value) == f"{dest}: no space left on device"
    assert dest.read_bytes() == before
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(TEMP_SUFFIX)]
