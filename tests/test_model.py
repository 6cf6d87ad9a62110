"""nmfsep.model: the NMFModel and its .npz file format (round trip, refusals, fuzzing)."""

from __future__ import annotations

import io
import json
import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import nmfsep
from nmfsep import audio as audio_mod
from nmfsep import model as model_mod
from nmfsep.errors import ModelError
from nmfsep.model import (
    FORMAT_VERSION,
    NMFModel,
    default_model,
    describe_model,
    load_model,
)
from nmfsep.spectral import STFTConfig

CONFIG = STFTConfig(n_fft=64, hop_length=16)


def _bases(n_freq: int, k: int, seed: int) -> np.ndarray:
    W = np.random.default_rng(seed).random((n_freq, k)).astype(np.float32) + 1e-3
    return W / np.linalg.norm(W, axis=0)


def make_model(**overrides: Any) -> NMFModel:
    fields: dict[str, Any] = dict(
        bases={"speech": _bases(33, 3, 0), "noise": _bases(33, 2, 1)},
        sr=16000,
        stft=CONFIG,
        beta=1.0,
        w_norm="l2",
        metadata={"training": {"files": ["a.wav"], "seconds": 12.5}, "credits": "CC-BY"},
    )
    fields.update(overrides)
    return NMFModel(**fields)


@pytest.fixture
def model() -> NMFModel:
    return make_model()


@pytest.fixture
def saved(model: NMFModel, tmp_path: Path) -> Path:
    return model.save(tmp_path / "model.npz")


def _read_parts(path: Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    with np.load(path, allow_pickle=False) as npz:
        meta = json.loads(str(npz["metadata"][()]))
        arrays = {k: npz[k] for k in npz.files if k != "metadata"}
    return meta, arrays


def _write_npz(path: Path, meta: Any, arrays: dict[str, Any]) -> Path:
    entries = dict(arrays)
    if meta is not None:
        entries["metadata"] = np.array(meta if isinstance(meta, str) else json.dumps(meta))
    with open(path, "wb") as fh:
        np.savez(fh, **entries)
    return path


def _assert_refused(path: Path, *needles: str) -> ModelError:
    with pytest.raises(ModelError) as info:
        load_model(path)
    text = str(info.value)
    assert "\n" not in text and text.startswith(str(path)), text
    for needle in needles:
        assert needle in text, text
    return info.value


# ---------------------------------------------------------------------------------------------
# the model object


def test_model_views(model: NMFModel) -> None:
    assert model.source_names == ["speech", "noise"]
    assert model.n_components == {"speech": 3, "noise": 2}
    W = model.W
    assert W.shape == (33, 5) and W.dtype == np.float32
    np.testing.assert_array_equal(W[:, 3:], model.bases["noise"])
    np.testing.assert_array_equal(model.component_sources(), [0, 0, 0, 1, 1])
    assert model.n_freq == 33


def test_constructor_converts_to_float32_and_validates() -> None:
    m = make_model(bases={"a": _bases(33, 2, 0).astype(np.float64)}, sr=np.int64(8000))
    assert m.bases["a"].dtype == np.float32 and isinstance(m.sr, int)
    bad_cases: list[tuple[dict[str, Any], str]] = [
        (dict(bases={}), "no sources"),
        (dict(bases={"a": np.ones((32, 2), np.float32)}), "rows"),
        (dict(bases={"a": np.ones((33, 0), np.float32)}), "no bases"),
        (dict(bases={"a": np.ones(33, np.float32)}), "2-D"),
        (dict(bases={"a": -np.ones((33, 2), np.float32)}), "negative"),
        (dict(bases={"a": np.full((33, 2), np.nan, np.float32)}), "NaN"),
        (dict(bases={"../evil": np.ones((33, 2), np.float32)}), "bad source name"),
        (dict(bases={"": np.ones((33, 2), np.float32)}), "bad source name"),
        (dict(bases={"a": "not an array"}), "float array"),
        (dict(sr=0), "sample rate"),
        (dict(sr=44100.5), "sample rate"),
        (dict(beta=float("nan")), "beta"),
        (dict(w_norm="l3"), "w_norm"),
        (dict(metadata=[1]), "metadata"),
        (dict(stft={"n_fft": 64}), "STFTConfig"),
    ]
    for overrides, needle in bad_cases:
        with pytest.raises(ModelError, match=needle):
            make_model(**overrides)


# ---------------------------------------------------------------------------------------------
# saving and loading


def test_round_trip_is_bit_exact(model: NMFModel, saved: Path) -> None:
    loaded = load_model(saved)
    assert loaded.source_names == model.source_names
    for name in model.source_names:
        assert loaded.bases[name].dtype == np.float32
        assert loaded.bases[name].tobytes() == model.bases[name].tobytes()
    assert (loaded.sr, loaded.stft, loaded.beta, loaded.w_norm) == (16000, CONFIG, 1.0, "l2")
    assert loaded.metadata["training"] == model.metadata["training"]
    assert loaded.metadata["credits"] == "CC-BY"
    assert loaded.metadata["nmfsep_version"] == nmfsep.__version__
    assert "created" not in loaded.metadata  # no time of writing: reproducible bytes
    # saving a loaded model again gives the same model
    again = load_model(loaded.save(saved.with_name("again.npz")))
    assert again.metadata == loaded.metadata
    np.testing.assert_array_equal(again.W, model.W)


def test_file_layout_is_plain_numpy(saved: Path) -> None:
    meta, arrays = _read_parts(saved)
    assert sorted(arrays) == ["W_0", "W_1"]
    assert all(a.dtype == np.float32 for a in arrays.values())
    assert meta["format"] == "nmfsep-model" and meta["format_version"] == FORMAT_VERSION == 2
    assert meta["sources"] == [
        {"name": "speech", "n_components": 3, "array": "W_0"},
        {"name": "noise", "n_components": 2, "array": "W_1"},
    ]
    expected = {"sr": 16000, "n_fft": 64, "hop_length": 16, "win_length": 64, "window": "hann"}
    assert {k: meta[k] for k in expected} == expected
    assert meta["beta"] == 1.0 and meta["w_norm"] == "l2"
    assert meta["nmfsep_version"] == nmfsep.__version__
    assert meta["metadata"]["training"]["seconds"] == 12.5
    assert zipfile.is_zipfile(saved)


def test_save_converts_numpy_metadata_and_writes_exact_name(tmp_path: Path) -> None:
    m = make_model(
        metadata={"seconds": np.float64(1.5), "n": np.int32(3), "files": (Path("a.wav"),)}
    )
    path = m.save(tmp_path / "model-without-extension")
    assert path.name == "model-without-extension" and path.is_file()
    assert load_model(path).metadata["seconds"] == 1.5
    assert sorted(os.listdir(tmp_path)) == ["model-without-extension"]


def test_save_is_atomic(model: NMFModel, saved: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    before = saved.read_bytes()
    seen: list[str] = []
    real_replace = os.replace

    def spy(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        seen.append(Path(src).name)
        real_replace(src, dst)

    monkeypatch.setattr(audio_mod.os, "replace", spy)
    model.save(saved.with_name("second.npz"))
    assert seen[0].startswith(".second.npz.") and not seen[0].endswith(".npz")

    def boom(*args: Any, **kwargs: Any) -> None:
        args[0].write(b"PK partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(model_mod.np, "savez", boom)
    with pytest.raises(KeyboardInterrupt):
        model.save(saved)
    assert saved.read_bytes() == before
    assert sorted(os.listdir(saved.parent)) == ["model.npz", "second.npz"]


def test_save_errors(model: NMFModel, tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(ModelError, match="not a directory") as info:
        model.save(tmp_path / "file" / "m.npz")
    assert "\n" not in str(info.value)
    (tmp_path / "dir.npz").mkdir()
    with pytest.raises(ModelError, match="directory"):
        model.save(tmp_path / "dir.npz")
    model.bases["speech"][0, 0] = -1.0  # mutated after construction: caught at save
    with pytest.raises(ModelError, match="negative"):
        model.save(tmp_path / "m.npz")
    assert not (tmp_path / "m.npz").exists()


# ---------------------------------------------------------------------------------------------
# refusals


class _Marker:
    """Unpickling this would create a marker file (it must never happen)."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (self.path, "w"))


def test_pickled_object_array_is_refused_without_unpickling(saved: Path, tmp_path: Path) -> None:
    marker = tmp_path / "PWNED"
    meta, arrays = _read_parts(saved)
    evil = np.array([_Marker(str(marker))], dtype=object)
    # as an extra entry, as the bases of a source, and as the only entry
    for i, entries in enumerate(
        [{**arrays, "x": evil}, {**arrays, "W_0": evil}, {"x": evil}], start=1
    ):
        path = _write_npz(tmp_path / f"evil{i}.npz", meta if i < 3 else None, entries)
        _assert_refused(path, "refusing pickled data")
    assert not marker.exists()
    # a raw pickle file is not an npz either
    import pickle

    raw = tmp_path / "raw.npz"
    raw.write_bytes(pickle.dumps(_Marker(str(marker))))
    _assert_refused(raw, "not an nmfsep model file")
    assert not marker.exists()


def _variant(saved: Path, tmp_path: Path, edit: Any, name: str = "bad.npz") -> Path:
    meta, arrays = _read_parts(saved)
    result = edit(meta, arrays)
    if result is not None:
        meta = result
    return _write_npz(tmp_path / name, meta, arrays)


def _set(key: str, value: Any) -> Any:
    def edit(meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        meta[key] = value

    return edit


def _drop(key: str) -> Any:
    def edit(meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        del meta[key]

    return edit


def _array(key: str, value: Any) -> Any:
    def edit(meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        if value is None:
            del arrays[key]
        else:
            arrays[key] = value

    return edit


def _source(i: int, key: str, value: Any) -> Any:
    def edit(meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        meta["sources"][i][key] = value

    return edit


def _neg(meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
    arrays["W_1"] = arrays["W_1"].copy()
    arrays["W_1"][3, 1] = -0.5


REFUSALS: dict[str, tuple[Any, str]] = {
    "wrong format": (_set("format", "something-else"), "not an nmfsep model file"),
    "no format": (_drop("format"), "not an nmfsep model file"),
    "newer version": (
        _set("format_version", 3),
        "model format version 3 is newer than this nmfsep supports (2); upgrade nmfsep",
    ),
    "version 0": (_set("format_version", 0), "bad model format version"),
    "version str": (_set("format_version", "1"), "bad model format version"),
    "version bool": (_set("format_version", True), "bad model format version"),
    "no sources": (_drop("sources"), "lacks 'sources'"),
    "empty sources": (_set("sources", []), "no sources"),
    "sources not list": (_set("sources", {"a": 1}), "wrong type"),
    "no sr": (_drop("sr"), "lacks 'sr'"),
    "sr zero": (_set("sr", 0), "sample rate"),
    "sr float": (_set("sr", 16000.5), "wrong type"),
    "sr string": (_set("sr", "16000"), "wrong type"),
    "no n_fft": (_drop("n_fft"), "lacks 'n_fft'"),
    "n_fft small": (_set("n_fft", 8), "bad STFT settings"),
    "n_fft string": (_set("n_fft", "abc"), "bad STFT settings"),
    "hop zero": (_set("hop_length", 0), "bad STFT settings"),
    "window": (_set("window", "kaiser"), "bad STFT settings"),
    "n_fft mismatch": (_set("n_fft", 128), "rows but n_fft=128 and context=1 need 65"),
    "context even": (_set("context", 2), "bad context"),
    "context mismatch": (_set("context", 3), "and context=3 need"),
    "no beta": (_drop("beta"), "lacks 'beta'"),
    "beta str": (_set("beta", "kl"), "wrong type"),
    "w_norm": (_set("w_norm", "max"), "w_norm"),
    "count mismatch": (_source(0, "n_components", 4), "metadata says 4 components"),
    "missing array": (_array("W_1", None), "lacks the bases of source 'noise'"),
    "bad array name": (_source(1, "array", "W_0"), "bad array name"),
    "array is metadata": (_source(1, "array", "metadata"), "bad array name"),
    "source not object": (_set("sources", ["speech"]), "not a JSON object"),
    "no name": (_source(0, "name", None), "wrong type"),
    "bad name": (_source(0, "name", "../../etc/passwd"), "bad source name"),
    "duplicate name": (_source(1, "name", "speech"), "duplicate source name"),
    "nan bases": (_array("W_0", np.full((33, 3), np.nan, np.float32)), "NaN or infinite"),
    "inf bases": (_array("W_0", np.full((33, 3), np.inf, np.float32)), "NaN or infinite"),
    "negative bases": (_neg, "negative values"),
    "empty bases": (_array("W_0", np.zeros((33, 0), np.float32)), "metadata says 3"),
    "int bases": (_array("W_0", np.ones((33, 3), np.int32)), "floating point"),
    "complex bases": (_array("W_0", np.ones((33, 3), np.complex64)), "floating point"),
    "3-D bases": (_array("W_0", np.ones((33, 3, 1), np.float32)), "2-D"),
    "user metadata": (_set("metadata", [1, 2]), "not a JSON object"),
}


@pytest.mark.parametrize("case", list(REFUSALS))
def test_refusals(case: str, saved: Path, tmp_path: Path) -> None:
    edit, needle = REFUSALS[case]
    _assert_refused(_variant(saved, tmp_path, edit), needle)


def test_empty_source_with_zero_components_refused(saved: Path, tmp_path: Path) -> None:
    def edit(meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        arrays["W_0"] = np.zeros((33, 0), np.float32)
        meta["sources"][0]["n_components"] = 0

    _assert_refused(_variant(saved, tmp_path, edit), "no bases")


def test_float64_bases_in_file_are_accepted_as_float32(saved: Path, tmp_path: Path) -> None:
    path = _variant(saved, tmp_path, _array("W_0", _bases(33, 3, 5).astype(np.float64)))
    assert load_model(path).bases["speech"].dtype == np.float32


def test_metadata_problems(saved: Path, tmp_path: Path) -> None:
    _, arrays = _read_parts(saved)
    _assert_refused(_write_npz(tmp_path / "a.npz", None, arrays), "no 'metadata' entry")
    _assert_refused(_write_npz(tmp_path / "b.npz", "{not json", arrays), "not valid JSON")
    _assert_refused(_write_npz(tmp_path / "c.npz", "[1, 2]", arrays), "not a JSON object")
    deep = "[" * 100_000 + "]" * 100_000
    _assert_refused(_write_npz(tmp_path / "d.npz", deep, arrays), "not valid JSON")
    with open(tmp_path / "e.npz", "wb") as fh:
        np.savez(fh, allow_pickle=False, metadata=np.array([1.0, 2.0]), **arrays)
    _assert_refused(tmp_path / "e.npz", "not a text entry")


def test_not_model_files(saved: Path, tmp_path: Path) -> None:
    _assert_refused(tmp_path / "missing.npz", "no such model file")
    (tmp_path / "dir.npz").mkdir()
    _assert_refused(tmp_path / "dir.npz", "is a directory")
    (tmp_path / "empty.npz").write_bytes(b"")
    _assert_refused(tmp_path / "empty.npz", "empty")
    (tmp_path / "text.npz").write_text("hello, I am not a model\n")
    _assert_refused(tmp_path / "text.npz", "not an nmfsep model file")
    np.save(tmp_path / "single.npy", np.ones(3))
    _assert_refused(tmp_path / "single.npy", "not an nmfsep model file")
    data = saved.read_bytes()
    (tmp_path / "cut.npz").write_bytes(data[: len(data) // 2])
    _assert_refused(tmp_path / "cut.npz", "model file")
    with zipfile.ZipFile(tmp_path / "other.npz", "w") as zf:
        zf.writestr("readme.txt", "hello")
    _assert_refused(tmp_path / "other.npz", "not a numpy array")


def test_header_promising_more_data_than_present(tmp_path: Path) -> None:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buf, {"descr": "<f4", "fortran_order": False, "shape": (10**9, 2)}
    )
    buf.write(b"\0" * 64)
    with zipfile.ZipFile(tmp_path / "huge.npz", "w") as zf:
        zf.writestr("W_0.npy", buf.getvalue())
        zf.writestr("metadata.npy", _npy_bytes(np.array("{}")))
    _assert_refused(tmp_path / "huge.npz", "shorter than its header says")


def _npy_bytes(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a)
    return buf.getvalue()


@pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root ignores permissions"
)
def test_unreadable_model(saved: Path) -> None:
    saved.chmod(0)
    try:
        _assert_refused(saved, "permission denied")
    finally:
        saved.chmod(0o600)


# ---------------------------------------------------------------------------------------------
# default model and description


def test_default_model(model: NMFModel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.resources

    fake_pkg = tmp_path / "pkg"
    (fake_pkg / "data").mkdir(parents=True)
    monkeypatch.setattr(importlib.resources, "files", lambda name: fake_pkg)
    with pytest.raises(ModelError, match="default model is missing") as info:
        default_model()
    assert "\n" not in str(info.value)
    model.save(fake_pkg / "data" / "default_model.npz")
    assert default_model().source_names == ["speech", "noise"]


def test_describe_model(model: NMFModel) -> None:
    d = describe_model(model)
    json.dumps(d)
    assert d["sources"] == [
        {"name": "speech", "n_components": 3},
        {"name": "noise", "n_components": 2},
    ]
    assert d["n_components"] == 5 and d["sr"] == 16000 and d["n_freq"] == 33
    assert d["stft"] == {"n_fft": 64, "hop_length": 16, "win_length": 64, "window": "hann"}
    assert d["beta"] == 1.0 and d["w_norm"] == "l2"
    assert d["metadata"]["training"]["seconds"] == 12.5


# ---------------------------------------------------------------------------------------------
# fuzzing


@pytest.fixture(scope="module")
def fuzz_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("fuzz_model")
    make_model().save(path / "good.npz")
    return path


def _check(path: Path) -> None:
    try:
        m = load_model(path)
    except ModelError as exc:
        assert "\n" not in str(exc)
        return
    assert np.isfinite(m.W).all() and (m.W >= 0).all()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.binary(max_size=400), zip_prefix=st.booleans())
def test_fuzz_random_bytes(fuzz_dir: Path, data: bytes, zip_prefix: bool) -> None:
    path = fuzz_dir / "random.npz"
    path.write_bytes((b"PK\x03\x04" if zip_prefix else b"") + data)
    _check(path)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    cut=st.integers(0, 10_000),
    flips=st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=6),
)
def test_fuzz_damaged_model(fuzz_dir: Path, cut: int, flips: list[tuple[int, int]]) -> None:
    data = bytearray((fuzz_dir / "good.npz").read_bytes())
    if cut < len(data):
        data = data[: max(cut, 1)]
    for pos, value in flips:
        if pos < len(data):
            data[pos] = value
    path = fuzz_dir / "damaged.npz"
    path.write_bytes(bytes(data))
    _check(path)
