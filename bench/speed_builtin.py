"""CPU per audio second of the built-in path against the 32 + 32 fixed-basis reference.

The shipped model (refiner included) on the speed check's 20 s of fold mixtures
(``bench/generalise.py``) and on 60 s of a development mixture looped the way
``bench/scale.py`` loops it, with each ``--blend`` weight (``separate --cluster-blend``) and
each ``--stationary`` weight (``separate --stationary-blend``), one BLAS thread, process CPU
time (best of 3), the reference in the same run:

    OMP_NUM_THREADS=1 .venv/bin/python bench/speed_builtin.py [--blend 0,0.4] [--stationary 0,0.7]
        [--refine 0.5] [--sep '{"free_components": 3, "frame_balance": 0, "l1": 0}' ...]

``--sep`` (repeatable): other separation options, each a variant measured in the same run.

Needs ``../shared/corpus`` (the fold mixtures) and ``../shared/data`` or ``sample_audio``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _generalise_methods as gm
import generalise as gen
import scale


def _floats(text: str) -> list[float]:
    return [float(v) for v in text.split(",") if v]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blend", type=_floats, default=[0.0, 0.4], help="cluster_blend weights")
    parser.add_argument(
        "--stationary", type=_floats, default=[0.0, 0.7], help="stationary_blend weights"
    )
    parser.add_argument("--refine", type=float, default=None, help="refiner weight (model's)")
    parser.add_argument("--seconds", type=float, default=60.0, help="length of the looped file")
    parser.add_argument(
        "--sep",
        action="append",
        default=[],
        help="JSON of other separation options, one variant each (repeatable)",
    )
    args = parser.parse_args()

    from threadpoolctl import threadpool_limits

    import nmfsep
    from nmfsep.model import default_model

    corpus = gen.Corpus()
    folds = gen.make_folds(corpus, 5, 0)
    mixtures = gen.make_mixtures(corpus, folds, 16, 5.0, 0)
    folds20 = np.concatenate([m.mix for m in mixtures[:4]]).astype(np.float32)[np.newaxis]
    clip, sr = scale._clip("d01*/mix.wav", "mix.wav")
    n = int(args.seconds * sr)
    looped = np.resize(clip, n) * (0.8 + 0.2 * np.sin(2 * np.pi * np.arange(n) / (sr * 37.0)))
    cases = (("20 s of fold mixtures", folds20, 16000), (f"{args.seconds:g} s loop", looped, sr))
    model = default_model()
    reference = gm.reference_model_like(model)
    with threadpool_limits(1):
        for name, y, rate in cases:
            y = np.asarray(y, dtype=np.float32).reshape(1, -1)
            t_ref = gen.cpu_per_audio_second(lambda x: gm.separate_default(reference, x), y)
            row = [f"{name}: reference {t_ref * 1000:.1f} ms/s"]
            for extra in [json.loads(v) for v in args.sep] or [{}]:
                for w in args.blend:
                    for a in args.stationary:

                        def run(x: np.ndarray, w=w, a=a, rate=rate, extra=extra) -> object:
                            return nmfsep.separate(
                                x,
                                sr=rate,
                                cluster_blend=w,
                                stationary_blend=a,
                                refine=args.refine,
                                **extra,
                            )

                        t = gen.cpu_per_audio_second(run, y)
                        speed = f"{t * 1000:.1f} ms/s = {1 / t:.0f}x, ratio {t / t_ref:.2f}"
                        label = f" {json.dumps(extra)}" if extra else ""
                        row.append(f"blend {w:g} stationary {a:g}{label}: {speed}")
            print("; ".join(row), flush=True)


if __name__ == "__main__":
    main()
