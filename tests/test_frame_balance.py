"""``separate --frame-balance``: every frame at unit mean with free bases (nmfsep.engine)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf
from _cli import check_weight_option
from _paths import assert_paths_agree
from _signals import SR, hiss, tone_hiss_model, tones

from nmfsep.separation import separate

SAMPLES = Path(__file__).resolve().parents[1] / "sample_audio"


def test_live_file_and_memory_paths_give_the_same_samples(tmp_path: Path) -> None:
    """The balance works inside each block, like the free bases: every path agrees."""
    model = tone_hiss_model()
    mono = tones(3.0) + 0.5 * hiss(3.0)
    mono[-SR // 2 :] *= 8.0  # a loud last half second
    stereo = np.stack([mono, 0.7 * mono[::-1].copy()])
    opts = {"free_components": 2, "frame_balance": 1.0, "l1": 0.5, "block_seconds": 1.0}
    _, memory = assert_paths_agree(tmp_path, stereo, SR, model, chunk=3000, **opts)
    assert memory.settings["frame_balance"] == 1.0
    off = separate(stereo, SR, model, **{**opts, "frame_balance": 0.0})
    assert not np.allclose(memory.sources["voice"], off.sources["voice"], atol=1e-4)
    np.testing.assert_allclose(sum(memory.sources.values()), stereo, atol=1e-5)


def test_separate_command_with_frame_balance(tmp_path: Path) -> None:
    speech, _ = sf.read(SAMPLES / "speech.wav", dtype="float32", frames=2 * 16000)
    src = tmp_path / "mix.wav"
    noise = 0.03 * np.random.default_rng(3).standard_normal(speech.size).astype(np.float32)
    sf.write(src, speech + noise, 16000, subtype="FLOAT")
    check_weight_option(src, tmp_path, "--frame-balance", 1.0)
