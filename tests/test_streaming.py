"""Streaming separation: block by block equals whole-file processing, bounded memory, atomic."""

from __future__ import annotations

import json
import os
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from _signals import SR, hiss, tone_hiss_model, tones
from typer.testing import CliRunner

from nmfsep.batch import Job, run_jobs
from nmfsep.cli import app
from nmfsep.engine import auto_block_frames
from nmfsep.errors import AudioError, ParameterError
from nmfsep.model import NMFModel, default_model
from nmfsep.options import SeparateOptions
from nmfsep.separation import separate, train_model
from nmfsep.spectral import STFTConfig
from nmfsep.streaming import separate_file


@pytest.fixture(scope="module")
def model() -> NMFModel:
    return tone_hiss_model(context=5)  # the default context


def _write(path: Path, y: np.ndarray, sr: int, subtype: str = "FLOAT") -> Path:
    sf.write(path, np.atleast_2d(y).T, sr, subtype=subtype)
    return path


def _read(path: str | Path) -> np.ndarray:
    data, _ = sf.read(path, dtype="float32", always_2d=True)
    return data.T


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


@pytest.mark.parametrize(
    ("sr", "channels", "threads"),
    [(SR, 1, 1), (SR, 2, 2), (11025, 2, 1)],  # 11025 Hz: bases mapped onto another grid
)
def test_blocks_equal_whole_file(
    model: NMFModel, tmp_path: Path, sr: int, channels: int, threads: int
) -> None:
    seconds = 2.3
    mix = tones(seconds, sr) + hiss(seconds, sr)
    y = np.stack([mix * (1 - 0.3 * c) for c in range(channels)])[:, :-7]  # odd length
    src = _write(tmp_path / "in.wav", y, sr)
    outs = {name: str(tmp_path / f"{name}.wav") for name in model.source_names}
    result = separate_file(
        src,
        outs,
        model,
        subtypes=dict.fromkeys(outs, "FLOAT"),
        tol=0,
        max_iter=25,
        block_seconds=0.4,
        n_threads=threads,
    )
    assert result.settings["streaming"]["blocks"] >= 5
    whole = separate(y, sr, model, tol=0, max_iter=25)
    for name, path in outs.items():
        out = _read(path)
        assert out.shape == y.shape
        assert _rel(out, whole.sources[name]) < 1e-4
    assert sf.info(outs["voice"]).samplerate == sr
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".")]  # no temp file left


def test_default_tolerance_is_close_to_whole_file(model: NMFModel, tmp_path: Path) -> None:
    y = (tones(2.0) + hiss(2.0))[np.newaxis]
    src = _write(tmp_path / "in.wav", y, SR)
    outs = {name: str(tmp_path / f"{name}.wav") for name in model.source_names}
    separate_file(src, outs, model, subtypes=dict.fromkeys(outs, "FLOAT"), block_seconds=0.5)
    whole = separate(y, SR, model)
    for name, path in outs.items():
        assert _rel(_read(path), whole.sources[name]) < 2e-2


def test_default_model_and_pcm16_output(tmp_path: Path) -> None:
    sr = 16000
    y = (tones(1.5, sr) + hiss(1.5, sr))[np.newaxis]
    src = _write(tmp_path / "in.wav", y, sr, subtype="PCM_16")
    m = default_model()
    job = Job(
        str(src),
        {name: str(tmp_path / "out" / f"{name}.wav") for name in m.source_names},
        SeparateOptions(max_iter=20, block_seconds=0.5, free_components=0),  # blocks in parallel
    )
    (record,) = run_jobs([job], n_jobs=2)
    assert record.status == "ok", record
    assert record.settings["streaming"]["threads"] == 2
    hop = m.stft.hop_length
    frames, per_block = 1 + y.shape[1] // hop, round(0.5 * sr / hop)
    assert record.settings["streaming"]["blocks"] == -(-frames // per_block) >= 3
    total = np.zeros_like(y)
    for path in record.outputs.values():
        info = sf.info(path)
        assert (info.samplerate, info.channels, info.frames, info.subtype) == (
            sr,
            1,
            y.shape[1],
            "PCM_16",
        )
        total += _read(path)
    assert np.abs(total - _read(src)).max() < 3e-4  # sources sum to the mix (16-bit rounding)


def test_semi_supervised_online_free_bases(tmp_path: Path) -> None:
    voice_model = train_model(
        {"voice": [tones(3.0, seed=5)]},
        sr=SR,
        n_components=6,
        stft_config=STFTConfig(n_fft=256, hop_length=64),
        max_iter=40,
    )
    voice, noise = tones(4.0, seed=2), hiss(4.0, seed=3)
    y = (voice + noise)[np.newaxis]
    src = _write(tmp_path / "in.wav", y, SR)
    outs = {"voice": str(tmp_path / "voice.wav"), "residual": str(tmp_path / "residual.wav")}
    result = separate_file(
        src,
        outs,
        voice_model,
        subtypes=dict.fromkeys(outs, "FLOAT"),
        free_components=4,
        block_seconds=1.0,
        max_iter=60,
    )
    assert result.settings["streaming"]["blocks"] == 5  # 501 frames, 125 per block
    assert result.settings["streaming"]["online_free_bases"] is True
    est_voice, est_res = _read(outs["voice"]), _read(outs["residual"])
    np.testing.assert_allclose(est_voice + est_res, y, atol=1e-5)

    def sdr(ref: np.ndarray, est: np.ndarray) -> float:
        return float(10 * np.log10(np.sum(ref**2) / np.sum((ref - est) ** 2)))

    mix_sdr = sdr(voice, y[0])
    online = sdr(voice, est_voice[0])
    whole = sdr(
        voice, separate(y, SR, voice_model, free_components=4, max_iter=60).sources["voice"][0]
    )
    assert online > mix_sdr + 5.0
    assert online > min(whole - 3.0, 20.0)  # measured: online 40 dB, whole-file 51 dB


def test_one_block_file_equals_whole_file_semi_supervised(model: NMFModel, tmp_path: Path) -> None:
    y = (tones(1.0) + hiss(1.0))[np.newaxis]
    src = _write(tmp_path / "in.wav", y, SR)
    names = [*model.source_names, "residual"]
    outs = {name: str(tmp_path / f"{name}.wav") for name in names}
    separate_file(src, outs, model, subtypes=dict.fromkeys(outs, "FLOAT"), free_components=2)
    whole = separate(y, SR, model, free_components=2)
    for name in names:
        assert _rel(_read(outs[name]), whole.sources[name]) < 1e-4


def test_memory_does_not_grow_with_length(model: NMFModel, tmp_path: Path) -> None:
    def peak(seconds: float) -> int:
        y = np.tile(tones(2.0) + hiss(2.0), int(seconds // 2))[np.newaxis]
        src = _write(tmp_path / f"in{seconds}.wav", y, SR)
        outs = {n: str(tmp_path / f"{n}{seconds}.wav") for n in model.source_names}
        tracemalloc.start()
        try:
            separate_file(src, outs, model, max_iter=3, block_seconds=2.0)
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    short, long = peak(8.0), peak(240.0)
    assert long < 1.2 * short + 200_000
    assert long < 240 * SR * 4  # less than the long input itself as float32


def test_auto_block_size() -> None:
    cfg16, cfg44 = STFTConfig(n_fft=1024, hop_length=256), STFTConfig(n_fft=2822, hop_length=706)
    assert 50 <= auto_block_frames(cfg16, 16000, 1) * 256 / 16000 <= 60
    assert 10 <= auto_block_frames(cfg44, 44100, 2) * 706 / 44100 <= 60


def test_errors_leave_no_output(model: NMFModel, tmp_path: Path) -> None:
    y = (tones(2.0) + hiss(2.0))[np.newaxis]
    y[0, 9000] = np.nan
    src = _write(tmp_path / "nan.wav", y, SR)
    outs = {n: str(tmp_path / "o" / f"{n}.wav") for n in model.source_names}
    with pytest.raises(AudioError, match="NaN"):
        separate_file(src, outs, model, block_seconds=0.5)
    assert not (tmp_path / "o").exists() or not os.listdir(tmp_path / "o")

    good = _write(tmp_path / "good.wav", np.nan_to_num(y), SR)

    calls = []

    def interrupt(done: int, total: int) -> None:
        calls.append(done)
        if len(calls) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        separate_file(good, outs, model, block_seconds=0.5, progress=interrupt)
    assert not os.listdir(tmp_path / "o")  # temporary files removed, nothing half-written
    with pytest.raises(ParameterError, match="block_seconds"):
        separate_file(good, outs, model, block_seconds=0)


def test_cli_block_seconds(model: NMFModel, tmp_path: Path) -> None:
    model_path = tmp_path / "m.npz"
    model.save(model_path)
    y = (tones(2.0) + hiss(2.0))[np.newaxis]
    src = _write(tmp_path / "mix.wav", y, SR)
    result = CliRunner().invoke(
        app,
        [
            *("separate", str(src), "-m", str(model_path), "-o", str(tmp_path / "out")),
            *("--block-seconds", "0.5", "--json", "-q", "-j", "1"),
        ],
    )
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)["files"][0]
    assert record["settings"]["streaming"]["blocks"] == 5  # 251 frames, 62 per block
    assert record["settings"]["streaming"]["threads"] == 1
    total = sum(_read(p) for p in record["outputs"].values())
    assert np.abs(total - y).max() < 1e-5  # FLOAT input: FLOAT outputs


def _flac_of_unknown_length(path: Path, y: np.ndarray, sr: int) -> None:
    """Write ``y`` as a FLAC through a real pipe (what ``ffmpeg ... -f flac -`` gives): the
    header then has no total length."""
    import threading

    r, w = os.pipe()
    chunks: list[bytes] = []
    reader = threading.Thread(target=lambda: chunks.extend(iter(lambda: os.read(r, 65536), b"")))
    reader.start()
    try:
        with sf.SoundFile(w, "w", samplerate=sr, channels=1, format="FLAC", closefd=False) as f:
            f.write(y)
    finally:
        os.close(w)
        reader.join(30)
        os.close(r)
    path.write_bytes(b"".join(chunks))


def test_flac_of_unknown_length_is_streamed_fully(model: NMFModel, tmp_path: Path) -> None:
    y = tones(2.0) + hiss(2.0)
    src = tmp_path / "piped.flac"
    _flac_of_unknown_length(src, y, SR)
    outs = {n: str(tmp_path / f"{n}.wav") for n in model.source_names}
    result = separate_file(src, outs, model, subtypes=dict.fromkeys(outs, "FLOAT"))
    assert result.n_samples == y.size
    total = sum(_read(p) for p in outs.values())
    assert total.shape == (1, y.size) and np.abs(total[0] - y).max() < 1e-4  # FLAC is 16-bit


def test_outputs_must_be_a_mapping(model: NMFModel, tmp_path: Path) -> None:
    """A bare path as ``outputs`` is a usage error before anything is read or written (it was
    taken as its characters: "no estimate for source(s) /, a, ...")."""
    from nmfsep.streaming import cluster_file

    src = _write(tmp_path / "mix.wav", tones(1.0) + hiss(1.0), SR)
    for call in (
        lambda out: separate_file(src, out, model=model),
        lambda out: cluster_file(src, out),
    ):
        with pytest.raises(ParameterError, match="must map source names"):
            call(str(tmp_path / "out.wav"))
        with pytest.raises(ParameterError, match="source names"):
            call({0: tmp_path / "out.wav"})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mix.wav"]
