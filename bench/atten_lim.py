"""--atten-lim: what a strength limit does to SDR and STOI of the speech output.

The built-in model on the three speech cases of ../shared/data (d01-d03), the speech source
scored against the clean reference: BSS-eval SDR (512-tap, nmfsep.metrics) and STOI (pystoi).
Run: python bench/atten_lim.py  (prints a Markdown table).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from nmfsep import SeparateOptions, default_model, load_audio
from nmfsep.evaluation import perceptual_scores
from nmfsep.metrics import evaluate_separation
from nmfsep.separation import separate

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
LIMITS = (None, 20.0, 12.0, 6.0)


def main() -> None:
    cases = sorted(p for p in DATA.glob("d0[123]_*") if p.is_dir())
    if not cases:
        sys.exit(f"no cases under {DATA}")
    model = default_model()
    rows: dict[float | None, list[tuple[float, float]]] = {lim: [] for lim in LIMITS}
    for case in cases:
        mix, sr = load_audio(case / "mix.wav", mono=True)
        ref, _ = load_audio(case / "speech.wav", mono=True)
        n = min(mix.shape[1], ref.shape[1])
        for lim in LIMITS:
            out = separate(mix[:, :n], sr, model, options=SeparateOptions(atten_lim=lim))
            est = out.sources["speech"][0]
            sdr = evaluate_separation(ref[:, :n], est[np.newaxis], names=["speech"])[0].sdr
            stoi = perceptual_scores(ref[0, :n], est, sr, ["stoi"])["stoi"]
            rows[lim].append((sdr, float(stoi or 0.0)))
            print(case.name, lim, f"{sdr:.2f}", f"{stoi:.3f}", file=sys.stderr, flush=True)
    mix_stoi = []
    for case in cases:
        mix, sr = load_audio(case / "mix.wav", mono=True)
        ref, _ = load_audio(case / "speech.wav", mono=True)
        n = min(mix.shape[1], ref.shape[1])
        mix_stoi.append(perceptual_scores(ref[0, :n], mix[0, :n], sr, ["stoi"])["stoi"] or 0.0)
    print("| --atten-lim | SDR (mean of 3) | STOI (mean of 3) |")
    print("|---|---:|---:|")
    print(f"| unprocessed mixture | - | {np.mean(mix_stoi):.3f} |")
    for lim in LIMITS:
        sdr = np.mean([r[0] for r in rows[lim]])
        stoi = np.mean([r[1] for r in rows[lim]])
        print(f"| {'none' if lim is None else f'{lim:g} dB'} | {sdr:.2f} dB | {stoi:.3f} |")


if __name__ == "__main__":
    main()
