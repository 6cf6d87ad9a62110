"""The frame sample of ``cluster`` and its speech guide (``features="guided"``)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from nmfsep.cli import app
from nmfsep.errors import ParameterError
from nmfsep.metrics import si_sdr
from nmfsep.options import ClusterOptions
from nmfsep.separation import cluster_separate
from nmfsep.unsupervised import FrameSampler, SpeechGuide, sample_frames

SAMPLES = Path(__file__).resolve().parents[1] / "sample_audio"
SR = 16000


def _noise(n: int, seed: int = 0, channels: int = 1) -> np.ndarray:
    return (0.1 * np.random.default_rng(seed).standard_normal((channels, n))).astype(np.float32)


@pytest.mark.parametrize("max_frames", [10_000, 40])  # every frame / a sample of them
def test_guided_sampler_keeps_the_same_frames_and_their_speech_share(max_frames: int) -> None:
    x = _noise(3 * SR)
    x[:, SR : SR + 4000] = 0.0  # silent frames are left out of both samples
    opts = ClusterOptions(max_frames=max_frames)
    plain = FrameSampler(sr=SR, channels=1, options=opts)
    guided = FrameSampler(sr=SR, channels=1, options=opts, guided=True)
    half = np.zeros_like(x)
    half[:, : x.shape[1] // 2] = x[:, : x.shape[1] // 2]  # "speech" = the first half
    for a in range(0, x.shape[1], 7000):  # chunked
        plain.push(x[:, a : a + 7000])
        guided.push(x[:, a : a + 7000], speech=half[:, a : a + 7000])
    V = plain.finish()
    np.testing.assert_array_equal(guided.finish(), V)
    share = guided.speech_share()
    assert share.shape == V.shape and share.dtype == np.float32
    assert np.all((share >= 0) & (share <= 1))
    # frames well inside the first half are all speech, inside the second half none
    cols = np.mean(share, axis=0)
    assert cols[0] > 0.99 and cols[-1] < 0.01
    assert len(set(np.round(cols, 6).tolist()) - {0.0, 1.0}) <= 8  # only the frames at the cut


def test_guided_sampler_needs_the_estimate() -> None:
    guided = FrameSampler(sr=SR, channels=1, options=ClusterOptions(), guided=True)
    with pytest.raises(ParameterError):
        guided.push(_noise(SR))
    plain = FrameSampler(sr=SR, channels=1, options=ClusterOptions())
    plain.push(_noise(SR))
    plain.finish()
    with pytest.raises(ParameterError):
        plain.speech_share()


def test_speech_guide_keeps_the_mixture_in_step_whatever_the_chunking() -> None:
    x = _noise(2 * SR + 123, channels=2)

    def run(step: int) -> tuple[np.ndarray, np.ndarray]:
        guide = SpeechGuide(sr=SR, channels=2)
        mixes, speeches = [], []
        for a in range(0, x.shape[1], step):
            m, s = guide.push(x[:, a : a + step])
            mixes.append(m)
            speeches.append(s)
        m, s = guide.finish()
        return np.concatenate([*mixes, m], axis=1), np.concatenate([*speeches, s], axis=1)

    mix, speech = run(x.shape[1])
    np.testing.assert_array_equal(mix, x)  # every sample comes back once, in order
    assert speech.shape == x.shape and np.isfinite(speech).all()
    mix2, speech2 = run(3001)
    np.testing.assert_array_equal(mix2, x)
    np.testing.assert_allclose(speech2, speech, atol=1e-6)


def test_sample_frames_of_an_empty_stream() -> None:
    V, speech, config, n = sample_frames(
        iter([]), sr=SR, channels=1, options=ClusterOptions(features="guided")
    )
    assert n == 0 and V.shape == (config.n_freq, 0) and speech is None


def _speech_in_noise(seconds: float = 3.0) -> tuple[np.ndarray, np.ndarray]:
    s, sr = sf.read(SAMPLES / "speech.wav", dtype="float32")
    n, _ = sf.read(SAMPLES / "noise.wav", dtype="float32")
    assert sr == SR
    k = int(seconds * SR)
    return s[:k], s[:k] + n[:k]


def test_guided_cluster_finds_the_speech_of_a_real_recording() -> None:
    speech, mix = _speech_in_noise()
    result, model = cluster_separate(mix, SR, features="guided")
    record = model.metadata["training"]["cluster"]
    assert record["features"] == "guided"
    named = record["speech_source"]
    gains = {
        k: float(si_sdr(speech, v[0])) - float(si_sdr(speech, mix))
        for k, v in result.sources.items()
    }
    assert max(gains, key=gains.get) == named  # the source it calls speech is the speech
    assert gains[named] > 2.0, gains
    total = sum(result.sources.values())
    np.testing.assert_allclose(np.ravel(total), mix, atol=2e-5)
    again, _ = cluster_separate(mix, SR, features="guided")
    for k in result.sources:
        np.testing.assert_array_equal(again.sources[k], result.sources[k])


def test_cluster_command_with_guided_features(tmp_path: Path) -> None:
    _, mix = _speech_in_noise(2.0)
    src = tmp_path / "mix.wav"
    sf.write(src, mix, SR, subtype="FLOAT")
    out = tmp_path / "out"
    r = CliRunner().invoke(
        app, ["cluster", str(src), "--features", "guided", "-o", str(out), "--json", "-q"]
    )
    assert r.exit_code == 0, r.output
    entry = json.loads(r.stdout)["files"][0]
    assert entry["settings"]["features"] == "guided"
    assert entry["settings"]["speech_source"] in entry["outputs"]
    assert sorted(p.name for p in (out / "mix").iterdir()) == ["source1.wav", "source2.wav"]


def test_auto_features_follow_the_guide() -> None:
    _, mix = _speech_in_noise(5.0)  # -0.6 dB (its first 3 s, at -2.2 dB, the guide hears as 0.15)
    result, model = cluster_separate(mix, SR)  # features="auto" by default
    record = model.metadata["training"]["cluster"]
    assert record["features"] == "auto" and record["grouping"] == "guided"
    assert 0.18 <= record["speech_share"] <= 1.0
    guided, _ = cluster_separate(mix, SR, features="guided")  # the same grouping, same output
    for k in result.sources:
        np.testing.assert_array_equal(guided.sources[k], result.sources[k])
    assert result.settings["speech_source"] == record["speech_source"]
    # a mixture with no speech in it: two steady tones in low noise
    t = np.arange(3 * SR) / SR
    tones = 0.1 * np.sin(2 * np.pi * 220 * t) + 0.05 * np.sin(2 * np.pi * 1320 * t)
    music = (tones + 0.01 * _noise(3 * SR)[0]).astype(np.float32)
    _, model2 = cluster_separate(music, SR)
    record2 = model2.metadata["training"]["cluster"]
    assert record2["grouping"] == "mfcc0-or-mod", record2
    assert record2["speech_share"] < 0.18 and "speech_source" not in record2


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"n_sources": 1}, "one source is the mixture"),  # was "add --free-components K"
        ({"n_sources": "auto", "n_components": 1}, "must be at least n_sources (auto: 2)"),
        ({"mask_power": 65.0}, "<= 64"),
        ({"beta": 5.5}, "beta must be in [-5, 5]"),
    ],
)
def test_cluster_options_refuse_what_cannot_separate(
    kwargs: dict[str, object], needle: str
) -> None:
    with pytest.raises(ParameterError, match=re.escape(needle)):
        ClusterOptions(**kwargs)


@pytest.mark.parametrize("n_sources", [2, 3, "auto"])
def test_cluster_of_digital_silence_gives_silent_sources(n_sources: int | str) -> None:
    y = np.zeros((1, SR), np.float32)
    result, model = cluster_separate(y, SR, n_sources=n_sources)
    expected = 2 if n_sources == "auto" else n_sources
    assert sorted(result.sources) == [f"source{i + 1}" for i in range(expected)]
    assert all(not s.any() and s.shape == y.shape for s in result.sources.values())
    assert model.metadata["training"]["cluster"]["silent"] is True
    with pytest.raises(ParameterError, match="the mixture is silent"):
        cluster_separate(y, SR, n_sources=n_sources, allow_silent=False)


@pytest.mark.parametrize("plot", [False, True])
def test_cluster_command_writes_silent_sources_but_saves_no_model(
    tmp_path: Path, plot: bool
) -> None:
    """As ``separate`` does, a silent file gives silent outputs; a model of it would hold no
    bases, so ``--save-model`` makes that file an error, with nothing written."""
    if plot:
        pytest.importorskip("matplotlib")
    src = tmp_path / "quiet.wav"
    sf.write(src, np.zeros(SR, np.float32), SR, subtype="PCM_16")
    extra = ["--plot"] if plot else []
    r = CliRunner().invoke(app, ["cluster", str(src), "-o", str(tmp_path / "a"), "-q", *extra])
    assert r.exit_code == 0, r.output
    for name in ("source1", "source2"):
        y, _ = sf.read(tmp_path / "a" / "quiet" / f"{name}.wav")
        assert y.shape == (SR,) and not y.any()
    model = tmp_path / "b" / "m.npz"
    r = CliRunner().invoke(
        app, ["cluster", str(src), "-o", str(tmp_path / "b"), "--save-model", str(model), *extra]
    )
    assert r.exit_code == 1
    assert f"error: {src}: the mixture is silent: there are no bases to learn or save" in r.stderr
    assert not model.exists() and not (tmp_path / "b" / "quiet").exists()
