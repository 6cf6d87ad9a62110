"""Rebuild the built-in default model ``nmfsep/data/default_model.npz``.

    .venv/bin/python tools/make_default_model.py [DATA_DIR]

DATA_DIR is the development set (default ``../shared/data``). The speech source is trained on the
``train_speech.wav`` of every speech case (a male audiobook reader, a male and another male CMU
speaker, a female voice prompt set); the noise source on every ``train_noise.wav`` (tavern,
campfire, flowing water) plus synthetic white, pink and brown noise (no license), so that the
noise bases also cover plain broadband hiss and rumble. The test excerpts (``speech.wav``,
``noise.wav``, ``mix.wav``) are never used, so the model can be evaluated on them.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from nmfsep import __version__
from nmfsep.audio import load_audio
from nmfsep.separation import DEFAULT_COMPONENTS, default_stft, train_model

SR = 16000
SEED = 0


def coloured_noise(seconds: float, exponent: float, rng: np.random.Generator) -> np.ndarray:
    """Gaussian noise with power spectrum ~ 1/f**exponent (0 white, 1 pink, 2 brown)."""
    n = int(seconds * SR)
    spectrum = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1 / SR)
    f[0] = f[1]
    y = np.fft.irfft(spectrum / f ** (exponent / 2), n=n)
    return (0.05 * y / np.sqrt(np.mean(y**2))).astype(np.float32)[np.newaxis]


def main() -> None:
    data = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).parents[1] / "../shared/data")
    cases = json.loads((data / "cases.json").read_text())
    speech, noise, credits = [], [], []
    for case in cases:
        if case["kind"] != "speech":
            continue
        folder = data / case["case"]
        speech.append(load_audio(folder / "train_speech.wav", sr=SR)[0])
        noise.append(load_audio(folder / "train_noise.wav", sr=SR)[0])
        for name in ("train_speech.wav", "train_noise.wav"):
            src = case["sources"][name]
            for s in src if isinstance(src, list) else [src]:
                credits.append(
                    {
                        "file": f"{case['case']}/{name}",
                        "credit": s["credit"],
                        "license": s["license"],
                        "origin": f"{s['package']}: {s['path']}",
                    }
                )
    rng = np.random.default_rng(SEED)
    noise += [coloured_noise(4.0, e, rng) for e in (0.0, 1.0, 2.0)]
    credits.append(
        {
            "file": "synthetic white/pink/brown noise",
            "credit": "generated",
            "license": "none needed",
            "origin": "tools/make_default_model.py",
        }
    )
    model = train_model(
        {"speech": speech, "noise": noise},
        sr=SR,
        n_components=DEFAULT_COMPONENTS,
        stft_config=default_stft(SR),
        random_state=SEED,
        metadata={
            "nmfsep_version": __version__,
            "description": "built-in speech vs general noise model",
            "credits": credits,
            "built_by": "tools/make_default_model.py",
        },
    )
    out = Path(__file__).parents[1] / "nmfsep" / "data" / "default_model.npz"
    model.save(out)
    print(f"wrote {out} ({out.stat().st_size / 1024:.0f} KiB):", model.n_components)


if __name__ == "__main__":
    main()
