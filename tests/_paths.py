"""A shared check that the live, file and memory paths of the engine give the same samples."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from nmfsep.engine import Separator
from nmfsep.separation import SeparationResult, separate
from nmfsep.streaming import separate_file


def assert_paths_agree(
    tmp_path: Path, stereo: np.ndarray, sr: int, model: Any, *, chunk: int, **options: Any
) -> tuple[Any, SeparationResult]:
    """Separate ``stereo`` (channels, n) with ``options`` through ``separate_file`` (float32
    outputs), ``separate`` and a :class:`Separator` fed ``chunk`` samples at a time; assert all
    three give the same samples; return the file result and the memory result."""
    src = tmp_path / "mix.wav"
    sf.write(src, stereo.T, sr, subtype="FLOAT")
    memory = separate(stereo, sr, model, **options)
    outs = {name: tmp_path / f"{name}.wav" for name in memory.sources}
    floats = dict.fromkeys(outs, "FLOAT")
    result = separate_file(src, outs, model, subtypes=floats, **options)
    live = Separator(model, sr=sr, channels=stereo.shape[0], **options)
    pieces = [live.push(stereo[:, a : a + chunk]) for a in range(0, stereo.shape[1], chunk)]
    streamed = np.concatenate([*pieces, live.finish()], axis=-1)
    for i, (name, path) in enumerate(outs.items()):
        y, _ = sf.read(path, dtype="float32", always_2d=True)
        np.testing.assert_allclose(y.T, memory.sources[name], atol=1e-5)
        np.testing.assert_allclose(streamed[i], memory.sources[name], atol=1e-5)
    return result, memory
