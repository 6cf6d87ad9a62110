"""Discriminative training (issue 12, item 1): plain vs discriminative reconstruction bases.

    OMP_NUM_THREADS=1 .venv/bin/python bench/discriminative.py [--dev] [--folds-per-case N]
        [--builtin N] [--iter I] [--frames F] [--beta B] [--targets all|first]

* ``--dev``: the speech cases of ``../shared/data`` (d01-d03), trained per case on
  ``train_speech.wav`` + ``train_noise.wav`` with library defaults, then plain vs
  discriminative (``train_model(..., discriminative=True)`` path, same plain bases).
* ``--folds-per-case N``: N test mixtures per fold (5 folds) of ``bench/generalise.py`` (unseen
  speakers x unseen noises), per-case supervised: the speaker's and the noise's training parts
  (20 s each, the generalise.py per-case models) plain vs discriminative.
* ``--builtin N``: N mixtures per fold with the fold's built-in model (recipe ``current``:
  32 + 32 bases on all the fold's training speakers and noises), plain vs discriminative on the
  same clips, separated with defaults and with ``mask_power=1``.

Scores: SDRi / SI-SDRi (dB) / STOI of the speech estimate (``generalise.score``); CPU seconds of
plain training and of the discriminative step.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

import generalise as G  # noqa: E402

SR = G.SR


def _sep(model: Any, mix: np.ndarray, **opts: Any) -> np.ndarray:
    from nmfsep.separation import separate

    return separate(mix.astype(np.float32)[np.newaxis], SR, model, **opts).sources["speech"][0]


def _with_recon(model: Any, recon: dict) -> Any:
    from nmfsep.model import NMFModel

    return NMFModel(
        bases=model.bases,
        sr=model.sr,
        stft=model.stft,
        beta=model.beta,
        context=model.context,
        recon=recon,
    )


def _mean(rows: list[dict], key: str, metric: str) -> float:
    return float(np.mean([r[key][metric] for r in rows]))


def _table(rows: list[dict], keys: list[tuple[str, str]], title: str, per_row: bool) -> None:
    print(f"\n### {title}: SDRi / SI-SDRi (dB) / STOI\n")
    print("| case | " + " | ".join(label for _, label in keys) + " |")
    print("|---|" + "---:|" * len(keys))
    if per_row:
        for r in rows:
            cells = [
                f"{r[k]['sdri']:.2f} / {r[k]['si_sdri']:.2f} / {r[k]['stoi']:.3f}" for k, _ in keys
            ]
            print(f"| {r['id']} | " + " | ".join(cells) + " |")
    cells = [
        f"**{_mean(rows, k, 'sdri'):.2f}** / {_mean(rows, k, 'si_sdri'):.2f} / "
        f"{_mean(rows, k, 'stoi'):.3f}"
        for k, _ in keys
    ]
    print(f"| **mean ({len(rows)})** | " + " | ".join(cells) + " |", flush=True)


def run_dev(dkw: dict) -> list[dict]:
    import soundfile as sf

    from nmfsep.training import discriminative_bases, train_model

    data = G.DATA
    rows = []
    for meta in json.loads((data / "cases.json").read_text()):
        if meta["kind"] != "speech":
            continue
        d = data / meta["case"]
        mix = sf.read(d / "mix.wav", dtype="float64")[0]
        s = sf.read(d / "speech.wav", dtype="float64")[0]
        tr = {
            n: [sf.read(d / f"train_{n}.wav", dtype="float32")[0][np.newaxis]]
            for n in ("speech", "noise")
        }
        t = time.process_time()
        model = train_model(tr, sr=SR, refiner=None)  # plain bases, as measured
        t_plain = time.process_time() - t
        t = time.process_time()
        recon, info = discriminative_bases(model, tr, **dkw)
        t_disc = time.process_time() - t
        row = {
            "id": meta["case"],
            "plain": G.score(s, _sep(model, mix), mix),
            "disc": G.score(s, _sep(_with_recon(model, recon), mix), mix),
            "cpu_plain": t_plain,
            "cpu_disc": t_disc,
            "best_iteration": info["best_iteration"],
        }
        print(
            f"{row['id']}: plain {row['plain']['sdri']:.2f}, disc {row['disc']['sdri']:.2f} dB; "
            f"CPU {t_plain:.1f} s + {t_disc:.1f} s (best it {info['best_iteration']})",
            flush=True,
        )
        rows.append(row)
    _table(rows, [("plain", "plain"), ("disc", "discriminative")], "Dev set, per-case", True)
    return rows


def run_folds_per_case(per_fold: int, dkw: dict) -> list[dict]:
    from nmfsep.training import discriminative_bases

    corpus = G.Corpus()
    folds = G.make_folds(corpus, 5, 0)
    mixtures = G.make_mixtures(corpus, folds, per_fold, 5.0, 0)
    rows = []
    n = int(G.PER_CASE_TRAIN_SECONDS * SR)
    for m in mixtures:
        model = G.per_case_model(corpus, m, True)
        tr = {
            "speech": [corpus.split(m.speaker)[0][:n][np.newaxis]],
            "noise": [corpus.split(m.noise)[0][:n][np.newaxis]],
        }
        t = time.process_time()
        recon, _ = discriminative_bases(model, tr, **dkw)
        t_disc = time.process_time() - t
        row = {
            "id": m.ident,
            "plain": G.score(m.speech, _sep(model, m.mix), m.mix),
            "disc": G.score(m.speech, _sep(_with_recon(model, recon), m.mix), m.mix),
            "cpu_disc": t_disc,
        }
        print(
            f"{m.ident}: plain {row['plain']['sdri']:.2f}, disc {row['disc']['sdri']:.2f} dB "
            f"({t_disc:.1f} s)",
            flush=True,
        )
        rows.append(row)
    _table(rows, [("plain", "plain"), ("disc", "discriminative")], "Folds, per-case", False)
    return rows


def run_builtin(per_fold: int, dkw: dict) -> list[dict]:
    import _generalise_methods as gm

    from nmfsep.options import SeparateOptions
    from nmfsep.training import discriminative_bases

    corpus = G.Corpus()
    folds = G.make_folds(corpus, 5, 0)
    mixtures = G.make_mixtures(corpus, folds, per_fold, 5.0, 0)
    recipe = gm.RECIPES["current"]
    rows = []
    for fold in folds:
        model = G.fold_model(corpus, recipe, fold, True)
        tr = {
            "speech": [corpus.audio(k)[np.newaxis] for k in fold.train_speakers],
            "noise": [corpus.audio(k)[np.newaxis] for k in fold.train_noises],
        }
        models = {}
        for p in (2.0, 1.0):
            t = time.process_time()
            recon, info = discriminative_bases(
                model, tr, separate_options=SeparateOptions(mask_power=p), **dkw
            )
            models[p] = _with_recon(model, recon)
            print(
                f"fold {fold.index}: p={p:g} disc {time.process_time() - t:.1f} s, "
                f"best it {info['best_iteration']}",
                flush=True,
            )
        for m in (x for x in mixtures if x.fold == fold.index):
            row = {"id": m.ident}
            row["plain"] = G.score(m.speech, _sep(model, m.mix), m.mix)
            row["disc"] = G.score(m.speech, _sep(models[2.0], m.mix), m.mix)
            row["plain_p1"] = G.score(m.speech, _sep(model, m.mix, mask_power=1.0), m.mix)
            row["disc_p1"] = G.score(m.speech, _sep(models[1.0], m.mix, mask_power=1.0), m.mix)
            row["plain_free2_p1"] = G.score(
                m.speech, _sep(model, m.mix, mask_power=1.0, free_components=2), m.mix
            )
            rows.append(row)
    keys = [
        ("plain", "plain"),
        ("disc", "discriminative"),
        ("plain_p1", "plain p=1"),
        ("disc_p1", "discriminative p=1"),
        ("plain_free2_p1", "plain free2 p=1"),
    ]
    _table(rows, keys, "Folds, built-in (recipe 'current', fold's training part)", False)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dev", action="store_true")
    ap.add_argument("--folds-per-case", type=int, default=0)
    ap.add_argument("--builtin", type=int, default=0)
    ap.add_argument("--iter", type=int, default=None)
    ap.add_argument("--frames", type=int, default=None)
    ap.add_argument("--beta", type=float, default=None)
    ap.add_argument("--targets", choices=["all", "first"], default="all")
    ap.add_argument("--json", type=Path, default=ROOT / "bench" / "out" / "discriminative.json")
    args = ap.parse_args()
    dkw: dict[str, Any] = {}
    if args.iter is not None:
        dkw["n_iter"] = args.iter
    if args.frames is not None:
        dkw["n_frames"] = args.frames
    if args.beta is not None:
        dkw["beta"] = args.beta
    if args.targets == "first":
        dkw["targets"] = [0]
    print(f"discriminative settings: {dkw or 'library defaults'}", flush=True)
    out: dict[str, Any] = {"settings": dkw}
    if args.dev:
        out["dev"] = run_dev(dkw)
    if args.folds_per_case:
        out["folds_per_case"] = run_folds_per_case(args.folds_per_case, dkw)
    if args.builtin:
        out["builtin"] = run_builtin(args.builtin, dkw)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    main()
