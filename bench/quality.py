"""Separation quality in dB on real recordings, measured the way a user runs nmfsep.

    .venv/bin/python bench/quality.py [--data DIR] [--no-cluster] [--json OUT]
        [--cases SUBSTRING,...] [--train-args "--hpss-prior 2"]

For every case of the development set (``../shared/data``, if present) and of ``sample_audio/``:

* **nmfsep**: ``nmfsep train`` on the case's training clips, then ``nmfsep separate`` on the mix
  (the CLI in a subprocess, default settings); for speech cases also the built-in model
  (``nmfsep separate`` without ``-m``);
* **baseline**: what a user would write instead — scikit-learn ``NMF(beta_loss="kullback-leibler",
  solver="mu", n_components=32)`` per source on librosa ``|STFT|`` (n_fft 2048, hop 512),
  ``transform`` on the mix, p=2 Wiener mask;
* **oracle**: the Wiener mask (p=2) from the true sources at nmfsep's STFT — the ceiling of any
  masking method there;
* **cluster** (no training): ``nmfsep cluster -n 2`` with each feature set, permutation-solved,
  next to the mean of random assignments of the same bases (the floor).

Scores are for the wanted source (speech, or the music case's target): BSS-eval SDR (512-tap
filter, fast_bss_eval), its improvement over the unprocessed mixture (SDRi), and the SI-SDR
improvement (SI-SDRi).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
NMFSEP = [sys.executable, "-m", "nmfsep"]


def find_cases(data: Path | None) -> list[dict]:
    """Cases as dicts: name, kind, mix, wanted, other, train_wanted, train_other, names."""
    cases = []
    if data is not None and (data / "cases.json").is_file():
        for meta in json.loads((data / "cases.json").read_text()):
            d = data / meta["case"]
            speech = meta["kind"] == "speech"
            wanted, other = ("speech", "noise") if speech else ("target", "background")
            cases.append(
                {
                    "name": meta["case"],
                    "kind": meta["kind"],
                    "dir": d,
                    "names": (wanted, other),
                }
            )
    s = ROOT / "sample_audio"
    if (s / "mix.wav").is_file():
        cases.append(
            {"name": "sample_audio", "kind": "speech", "dir": s, "names": ("speech", "noise")}
        )
    return cases


def run(cmd: list[str]) -> dict:
    proc = subprocess.run(
        cmd, capture_output=True, text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"}
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return json.loads(proc.stdout) if proc.stdout.strip().startswith("{") else {}


def load(path: Path) -> tuple[np.ndarray, int]:
    import soundfile as sf

    y, sr = sf.read(path, dtype="float64", always_2d=True)
    return y.mean(axis=1), sr


def scores(ref: np.ndarray, est: np.ndarray, mix: np.ndarray) -> dict[str, float]:
    from nmfsep.metrics import bss_eval, si_sdr

    n = min(len(ref), len(est), len(mix))
    ref, est, mix = ref[:n], est[:n], mix[:n]
    sdr = float(bss_eval(ref, est)["sdr"][0])
    sdr_mix = float(bss_eval(ref, mix)["sdr"][0])
    return {
        "sdr": sdr,
        "sdri": sdr - sdr_mix,
        "si_sdri": float(si_sdr(ref, est)) - float(si_sdr(ref, mix)),
    }


def baseline(case: dict, mix: np.ndarray, sr: int) -> np.ndarray:
    """The scikit-learn + librosa baseline of the issue (KL, 32 bases, n_fft 2048, p=2)."""
    import librosa
    from sklearn.decomposition import NMF, non_negative_factorization

    wanted, other = case["names"]
    n_fft, hop, k = 2048, 512, 32
    bases = []
    for name in (wanted, other):
        y, _ = load(case["dir"] / f"train_{name}.wav")
        V = np.abs(librosa.stft(y.astype(np.float32), n_fft=n_fft, hop_length=hop))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = NMF(
                k,
                beta_loss="kullback-leibler",
                solver="mu",
                init="nndsvda",
                max_iter=200,
                random_state=0,
            )
            model.fit(V.T)
        bases.append(model.components_)
    W = np.vstack(bases)  # (2k, F), scikit-learn's orientation
    X = librosa.stft(mix.astype(np.float32), n_fft=n_fft, hop_length=hop)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # What NMF.transform does: H learned with the bases fixed (update_H=False).
        Ht, _, _ = non_negative_factorization(
            np.abs(X).T,
            H=W,
            n_components=2 * k,
            update_H=False,
            beta_loss="kullback-leibler",
            solver="mu",
            max_iter=200,
        )
    H = Ht.T
    Pw = (W[:k].T @ H[:k]) ** 2
    Po = (W[k:].T @ H[k:]) ** 2
    mask = Pw / np.maximum(Pw + Po, 1e-20)
    return librosa.istft(mask * X, n_fft=n_fft, hop_length=hop, length=len(mix))


def oracle(case: dict, mix: np.ndarray, sr: int) -> np.ndarray:
    from nmfsep.engine import default_stft
    from nmfsep.metrics import oracle_wiener_estimates

    wanted, other = case["names"]
    s, _ = load(case["dir"] / f"{wanted}.wav")
    o, _ = load(case["dir"] / f"{other}.wav")
    n = min(len(s), len(o))
    return oracle_wiener_estimates(np.stack([s[:n], o[:n]]), config=default_stft(sr))[0]


def random_floor(case: dict, mix: np.ndarray, sr: int, ref: np.ndarray, n_draws: int = 20) -> float:
    """Mean SDRi of random assignments of the bases that `cluster` learns (permutation-solved)."""
    from nmfsep.defaults import CLUSTER_WINDOW_SECONDS
    from nmfsep.defaults import COMPONENTS as DEFAULT_COMPONENTS
    from nmfsep.engine import default_stft
    from nmfsep.masks import apply_masks, wiener_masks
    from nmfsep.metrics import bss_eval
    from nmfsep.nmf import fit_nmf
    from nmfsep.spectral import istft, stft

    def source_parts(W, H, labels, n):  # each cluster's part W_i H_i
        return np.stack([W[:, labels == i] @ H[labels == i] for i in range(n)])

    config = default_stft(sr, window_seconds=CLUSTER_WINDOW_SECONDS)  # as `nmfsep cluster`
    X = stft(mix.astype(np.float32)[np.newaxis], config)
    V = np.abs(X).mean(axis=0)
    res = fit_nmf(V, n_components=DEFAULT_COMPONENTS, beta=1.0, random_state=0)
    rng = np.random.default_rng(0)
    mix_sdr = float(bss_eval(ref, mix)["sdr"][0])
    values = []
    for _ in range(n_draws):
        labels = rng.permutation(np.arange(DEFAULT_COMPONENTS) % 2)
        masks = wiener_masks(source_parts(res.W, res.H, labels, 2), power=2.0)
        est = istft(apply_masks(masks, X), config, length=len(mix))[:, 0]
        best = max(float(bss_eval(ref, e)["sdr"][0]) for e in est)
        values.append(best - mix_sdr)
    return float(np.mean(values))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--no-cluster", action="store_true")
    parser.add_argument("--json", type=Path, default=ROOT / "bench" / "out" / "quality.json")
    parser.add_argument("--cases", default="", help="only cases whose name has one of these")
    parser.add_argument("--train-args", default="", help="extra `nmfsep train` flags (quoted)")
    args = parser.parse_args()
    import shlex

    train_args = shlex.split(args.train_args)
    from nmfsep.defaults import CLUSTER_FEATURE_KINDS as FEATURES

    cases = find_cases(args.data if args.data.is_dir() else None)
    if args.cases:
        cases = [c for c in cases if any(k in c["name"] for k in args.cases.split(","))]
    results: dict[str, dict[str, dict[str, float]]] = {}
    t_start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        for case in cases:
            wanted, other = case["names"]
            d = case["dir"]
            mix, sr = load(d / "mix.wav")
            ref, _ = load(d / f"{wanted}.wav")
            row: dict[str, dict[str, float]] = {}
            work = tmp / case["name"]
            model = work / "model.npz"
            run(
                [
                    *NMFSEP,
                    "train",
                    f"{wanted}={d / f'train_{wanted}.wav'}",
                    f"{other}={d / f'train_{other}.wav'}",
                    "-o",
                    str(model),
                    "-q",
                    *train_args,
                ]
            )
            run(
                [
                    *NMFSEP,
                    "separate",
                    str(d / "mix.wav"),
                    "-m",
                    str(model),
                    "-o",
                    str(work / "sup"),
                    "-q",
                ]
            )
            row["nmfsep"] = scores(ref, load(work / "sup" / "mix" / f"{wanted}.wav")[0], mix)
            if case["kind"] == "speech":
                run([*NMFSEP, "separate", str(d / "mix.wav"), "-o", str(work / "def"), "-q"])
                row["nmfsep (built-in model)"] = scores(
                    ref, load(work / "def" / "mix" / "speech.wav")[0], mix
                )
            row["baseline"] = scores(ref, baseline(case, mix, sr), mix)
            row["oracle"] = scores(ref, oracle(case, mix, sr), mix)
            if not args.no_cluster:
                for features in FEATURES:
                    out = work / f"cl_{features}"
                    run(
                        [
                            *NMFSEP,
                            "cluster",
                            str(d / "mix.wav"),
                            "-n",
                            "2",
                            "--features",
                            features,
                            "-o",
                            str(out),
                            "-q",
                        ]
                    )
                    best = max(
                        (scores(ref, load(out / "mix" / f"source{i}.wav")[0], mix) for i in (1, 2)),
                        key=lambda s: s["sdr"],
                    )
                    row[f"cluster {features}"] = best
                row["cluster random floor"] = {"sdri": random_floor(case, mix, sr, ref)}
            results[case["name"]] = row
            print(
                f"{case['name']}: " + ", ".join(f"{k} {v['sdri']:.2f}" for k, v in row.items()),
                flush=True,
            )
    print_tables(results, cases)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2))
    print(f"\n({time.perf_counter() - t_start:.0f} s; raw numbers in {args.json})")


def print_tables(results: dict, cases: list[dict]) -> None:
    methods = ["nmfsep", "nmfsep (built-in model)", "baseline", "oracle"]
    print("\n### Supervised separation: wanted source, dB (SDR / SDRi / SI-SDRi)\n")
    print("| case | " + " | ".join(methods) + " |")
    print("|---|" + "---:|" * len(methods))
    for case in cases:
        row = results[case["name"]]
        cells = [
            f"{row[m]['sdr']:.2f} / {row[m]['sdri']:.2f} / {row[m]['si_sdri']:.2f}"
            if m in row
            else "–"
            for m in methods
        ]
        print(f"| {case['name']} | " + " | ".join(cells) + " |")
    dev_speech = [c["name"] for c in cases if c["kind"] == "speech" and c["name"] != "sample_audio"]
    if dev_speech:
        mean = {m: float(np.mean([results[c][m]["sdri"] for c in dev_speech])) for m in methods}
        print(
            f"| **mean SDRi, dev speech cases ({len(dev_speech)})** | "
            + " | ".join(f"**{mean[m]:.2f}**" for m in methods)
            + " |"
        )
        print(
            f"\nnmfsep − baseline: {mean['nmfsep'] - mean['baseline']:+.2f} dB (target ≥ +1); "
            f"nmfsep / oracle: {100 * mean['nmfsep'] / mean['oracle']:.0f} % (target ≥ 60 %); "
            f"baseline / oracle: {100 * mean['baseline'] / mean['oracle']:.0f} %; "
            f"built-in / oracle: {100 * mean['nmfsep (built-in model)'] / mean['oracle']:.0f} %"
        )
    cl = [k for k in next(iter(results.values())) if k.startswith("cluster")]
    if cl:
        print("\n### Without training (`nmfsep cluster -n 2`): SDRi of the wanted source, dB\n")
        cols = [*cl, "nmfsep"]
        print(
            "| case | "
            + " | ".join(
                c.replace("cluster ", "") if c != "nmfsep" else "supervised (ceiling)" for c in cols
            )
            + " |"
        )
        print("|---|" + "---:|" * len(cols))
        for case in cases:
            row = results[case["name"]]
            print(f"| {case['name']} | " + " | ".join(f"{row[c]['sdri']:.2f}" for c in cols) + " |")
        if dev_speech:
            print(
                "| **mean, dev speech cases** | "
                + " | ".join(
                    f"**{np.mean([results[c][k]['sdri'] for c in dev_speech]):.2f}**" for k in cols
                )
                + " |"
            )


if __name__ == "__main__":
    main()
