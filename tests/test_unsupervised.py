"""The frame sample of ``cluster`` and its speech guide (``features="guided"``)."""

from __future__ import annotations

import json
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


# ------------------------------------------------------------------------------ cluster_blend


def _sdr(ref: np.ndarray, est: np.ndarray) -> float:
    from nmfsep.metrics import bss_eval

    return float(bss_eval(ref, est)["sdr"][0])


def test_cluster_blend_weights_two_estimates_and_keeps_the_sum() -> None:
    from nmfsep.separation import separate

    speech, mix = _speech_in_noise(6.8)  # the whole file
    plain = separate(mix, SR)
    off = separate(mix, SR, cluster_blend=0.0)
    np.testing.assert_array_equal(off.sources["speech"], plain.sources["speech"])
    half = separate(mix, SR, cluster_blend=0.5)
    full = separate(mix, SR, cluster_blend=1.0)
    for r in (half, full):
        assert list(r.sources) == ["speech", "noise"] and r.settings["cluster_blend"] > 0
        np.testing.assert_allclose(r.sources["speech"] + r.sources["noise"], mix[None], atol=2e-5)
    # the blend is the weighted mean of the model's and the clustered estimate
    np.testing.assert_allclose(
        half.sources["speech"], 0.5 * (plain.sources["speech"] + full.sources["speech"]), atol=2e-5
    )
    assert not np.allclose(full.sources["speech"], plain.sources["speech"], atol=1e-3)
    # on this real recording the blend beats the model alone (measured 9.1 -> 11.0 dB SDRi on
    # the whole 6.8 s file)
    assert _sdr(speech, half.sources["speech"][0]) > _sdr(speech, plain.sources["speech"][0]) + 0.5


def test_cluster_blend_file_path_equals_memory_and_is_refused_live(tmp_path: Path) -> None:
    from nmfsep.engine import Separator
    from nmfsep.separation import separate
    from nmfsep.streaming import separate_file

    _, mix = _speech_in_noise(2.5)
    stereo = np.stack([mix, 0.7 * mix[::-1].copy()])
    src = tmp_path / "mix.wav"
    sf.write(src, stereo.T, SR, subtype="FLOAT")
    outs = {"speech": tmp_path / "s.wav", "noise": tmp_path / "n.wav"}
    float32 = {"speech": "FLOAT", "noise": "FLOAT"}
    result = separate_file(src, outs, cluster_blend=0.4, block_seconds=1.0, subtypes=float32)
    assert result.settings["cluster_blend"] == 0.4
    assert result.settings["cluster"]["speech_source"] in ("source1", "source2")
    memory = separate(stereo, SR, cluster_blend=0.4, block_seconds=1.0)
    for name, path in outs.items():
        y, _ = sf.read(path, dtype="float32", always_2d=True)
        np.testing.assert_allclose(y.T, memory.sources[name], atol=1e-5)
    with pytest.raises(ParameterError, match="cluster_blend"):
        Separator(sr=SR, cluster_blend=0.5)
    with pytest.raises(ParameterError, match="cluster_blend"):
        separate(mix, SR, cluster_blend=1.5)


def test_cluster_blend_of_silence_is_the_model_alone() -> None:
    from nmfsep.separation import separate

    r = separate(np.zeros(SR, np.float32), SR, cluster_blend=0.5)
    assert all(not np.any(v) for v in r.sources.values())


def test_separate_command_with_cluster_blend(tmp_path: Path) -> None:
    _, mix = _speech_in_noise(2.0)
    src = tmp_path / "mix.wav"
    sf.write(src, mix, SR, subtype="FLOAT")
    runner = CliRunner()
    r = runner.invoke(
        app,
        ["separate", str(src), "--cluster-blend", "0.5", "-o", str(tmp_path / "o"), "--json", "-q"],
    )
    assert r.exit_code == 0, r.output
    entry = json.loads(r.stdout)["files"][0]
    assert entry["settings"]["cluster_blend"] == 0.5
    three = ["separate", str(src), "--cluster-blend", "0.5", "--free-components", "2"]
    r = runner.invoke(app, [*three, "-o", str(tmp_path / "o2")])
    assert r.exit_code == 2 and "two sources" in r.output


class _Delayed:
    """A stand-in separator: two sources (0.25 x, 0.75 x) returned ``delay`` samples late."""

    def __init__(self, delay: int, share: float = 0.25) -> None:
        self.names = ["a", "b"]
        self.plan = None
        self.n_threads = 1
        self.n_iter, self.converged, self.settings = 1, True, {}
        self.samples_in = 0
        self._delay, self._share = delay, share
        self._buf = np.zeros((1, 0), np.float32)

    def _out(self, x: np.ndarray) -> np.ndarray:
        return np.stack([self._share * x, (1 - self._share) * x])

    def push(self, x: np.ndarray) -> np.ndarray:
        self.samples_in += x.shape[1]
        self._buf = np.concatenate([self._buf, x], axis=1)
        ready = max(0, self._buf.shape[1] - self._delay)
        out, self._buf = self._buf[:, :ready], self._buf[:, ready:]
        return self._out(out)

    def finish(self) -> np.ndarray:
        out, self._buf = self._buf, self._buf[:, :0]
        return self._out(out)


def test_blend_separator_aligns_two_separators_of_different_latency() -> None:
    from nmfsep.unsupervised import BlendSeparator

    x = _noise(5000)
    blend = BlendSeparator(_Delayed(700), _Delayed(123, share=0.5), target=1, weight=0.4)
    pieces = [blend.push(x[:, a : a + 333]) for a in range(0, x.shape[1], 333)]
    out = np.concatenate([*pieces, blend.finish()], axis=-1)
    assert out.shape == (2, 1, 5000)
    # first source: 0.6 * 0.25 x + 0.4 * (the clustered source 1: 0.5 x); the second the rest
    np.testing.assert_allclose(out[0], (0.6 * 0.25 + 0.4 * 0.5) * x, atol=1e-6)
    np.testing.assert_allclose(out[0] + out[1], x, atol=1e-6)
    with pytest.raises(ParameterError, match="two sources"):
        three = _Delayed(0)
        three.names = ["a", "b", "c"]
        BlendSeparator(three, _Delayed(0), target=0, weight=0.5)
