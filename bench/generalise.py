"""Does the built-in speech/noise model work on voices and noises it has never heard?

    .venv/bin/python bench/generalise.py [--quick] [--folds N] [--per-fold M] [--data DIR]
                                         [--recipe NAME] [--json OUT]

Mixtures are built from the training corpus (``../shared/corpus``: 34 speakers, 99 noise
recordings) and scored with folds that hold out **both** speakers and noise recordings:

* speakers are dealt to ``--folds`` groups (seeded, alternating sex); noise recordings are grouped
  by *family* (the id without its trailing number and package, so ``birds_countryside1_0ad`` …
  ``birds_countryside7_0ad`` are one family and never sit on both sides of a fold) and the
  families are dealt to the folds by category;
* fold f's built-in model is trained with the candidate recipe on every speaker and noise
  recording **not** in group f, and tested on mixtures of group f's speakers with group f's
  noises only (unseen voices × unseen noises);
* a test mixture is a ``--seconds`` (5 s) excerpt of a speaker's last 30 % (its first 70 % is the
  per-case training material) plus an excerpt of a noise recording's last 30 % (recordings of at
  least 12 s only; the rest of the recording is its per-case training material), at −5, 0, 5 or
  10 dB: speech scaled to RMS 0.05 (−26 dBFS, like the dev set), noise scaled so that
  ``10 log10(Σ s² / Σ n²)`` equals the SNR over the excerpt; the seed fixes everything.

Methods, all on the same mixtures (wanted source: speech):

* **built-in**: the recipe of ``bench/_generalise_methods.py`` (``--recipe``, default the shipped
  one) trained on the fold's training part, separating with the built-in path's settings;
* **noisereduce stat.** / **noisereduce non-stat.**: ``noisereduce.reduce_noise`` 3.0.3 with its
  defaults, ``stationary=True`` (noise statistics from the mixture itself) and ``False``;
* **DD-Wiener**: decision-directed (Ephraim–Malah) a-priori SNR with a Wiener gain and a
  minimum-statistics noise PSD (``dd_wiener`` below);
* **supervised (per case)**: ``train_model`` with the library defaults (32 + 32 bases, context 5)
  on *that* speaker's first 70 % (at most 20 s) and *that* noise recording's first 70 % (at most
  20 s), then ``separate`` with defaults — what a user with examples of both sources gets;
* **oracle**: the Wiener mask (p = 2) from the true sources at the library's STFT.

Scores: BSS-eval SDR improvement over the mixture (SDRi, 512-tap, fast_bss_eval), SI-SDR
improvement (SI-SDRi) and STOI (pystoi, of the estimate; the mixture's own STOI is a column).
Also: the share of mixtures where the built-in path beats each noisereduce mode and DD-Wiener on
SDRi, the count of mixtures with built-in SDRi < 0 at SNR ≤ 5 dB, and the built-in path's CPU
time per second of audio relative to the current default model's recipe. With ``--data DIR``
(the dev set) the shipped ``nmfsep/data/default_model.npz`` is scored on its speech cases too.

Per-case models, fold models and peer scores are cached in ``bench/out/generalise_cache``
(keyed by recipe, parameters and fold), so re-runs only redo what changed; ``--no-cache`` ignores
the cache. Run with one BLAS thread (``OMP_NUM_THREADS=1``): the timings are CPU times.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

CORPUS = ROOT.parent / "shared" / "corpus"
DATA = ROOT.parent / "shared" / "data"
CACHE = ROOT / "bench" / "out" / "generalise_cache"
SR = 16000
SNRS = (-5, 0, 5, 10)
SPEECH_RMS = 0.05
TEST_SHARE = 0.3  # the last 30 % of every recording is test material, the rest training
MIN_NOISE_SECONDS = 12.0  # shorter noise recordings are used for training only
PER_CASE_TRAIN_SECONDS = 20.0
PEERS = ["nr_stationary", "nr_nonstationary", "dd_wiener", "supervised", "oracle"]
LABELS = {
    "builtin": "built-in",
    "nr_stationary": "noisereduce stat.",
    "nr_nonstationary": "noisereduce non-stat.",
    "dd_wiener": "DD-Wiener",
    "supervised": "supervised (per case)",
    "oracle": "oracle",
}


# -- corpus -------------------------------------------------------------------------------------


class Corpus:
    """Speech and noise recordings of the corpus, read on first use (float32, 16 kHz mono)."""

    def __init__(self, root: Path = CORPUS) -> None:
        self.root = root
        entries = json.loads((root / "corpus.json").read_text())["entries"]
        self.speech = {e["id"]: e for e in entries if e["kind"] == "speech"}
        self.noise = {e["id"]: e for e in entries if e["kind"] == "noise"}
        self._audio: dict[str, np.ndarray] = {}

    def audio(self, ident: str) -> np.ndarray:
        if ident not in self._audio:
            import soundfile as sf

            entry = self.speech.get(ident) or self.noise[ident]
            y, sr = sf.read(self.root / entry["file"], dtype="float32")
            if sr != SR:
                raise RuntimeError(f"{entry['file']}: expected {SR} Hz, got {sr}")
            self._audio[ident] = y if y.ndim == 1 else y.mean(axis=1)
        return self._audio[ident]

    def split(self, ident: str) -> tuple[np.ndarray, np.ndarray]:
        """(training part, test part) of a recording: its first 70 % and last 30 %."""
        y = self.audio(ident)
        cut = round(len(y) * (1.0 - TEST_SHARE))
        return y[:cut], y[cut:]


def noise_family(entry: dict) -> str:
    """Recordings of one family (same name up to a trailing number, same package) stay together."""
    stem = re.sub(r"[\d_]+$", "", entry["id"].rsplit("_", 1)[0])
    return f"{entry['package']}:{stem}"


@dataclass
class Fold:
    index: int
    test_speakers: list[str]
    test_noises: list[str]
    train_speakers: list[str]
    train_noises: list[str]

    def key(self) -> str:
        text = json.dumps([self.train_speakers, self.train_noises])
        return hashlib.sha1(text.encode()).hexdigest()[:12]


def make_folds(corpus: Corpus, n_folds: int, seed: int = 0) -> list[Fold]:
    rng = np.random.default_rng(seed)
    groups_s: list[list[str]] = [[] for _ in range(n_folds)]
    i = 0
    for sex in ("f", "m", "x"):
        ids = sorted(k for k, e in corpus.speech.items() if e["sex"] == sex)
        for k in rng.permutation(len(ids)):
            groups_s[i % n_folds].append(ids[k])
            i += 1
    families: dict[str, list[str]] = {}
    for k in sorted(corpus.noise):
        families.setdefault(noise_family(corpus.noise[k]), []).append(k)
    by_category: dict[str, list[str]] = {}
    for fam, members in families.items():
        by_category.setdefault(corpus.noise[members[0]]["category"].split("/")[0], []).append(fam)
    groups_n: list[list[str]] = [[] for _ in range(n_folds)]
    j = 0
    for cat in sorted(by_category):
        fams = sorted(by_category[cat])
        for k in rng.permutation(len(fams)):
            # a family goes to the fold with the fewest recordings among the next in turn
            groups_n[j % n_folds].extend(families[fams[k]])
            j += 1
    folds = []
    all_s, all_n = sorted(corpus.speech), sorted(corpus.noise)
    for f in range(n_folds):
        ts, tn = sorted(groups_s[f]), sorted(groups_n[f])
        folds.append(
            Fold(
                index=f,
                test_speakers=ts,
                test_noises=tn,
                train_speakers=[k for k in all_s if k not in ts],
                train_noises=[k for k in all_n if k not in tn],
            )
        )
    return folds


@dataclass
class Mixture:
    ident: str
    fold: int
    speaker: str
    noise: str
    snr: float
    speech: np.ndarray
    noise_sig: np.ndarray
    mix: np.ndarray
    info: dict[str, Any] = field(default_factory=dict)


def _excerpt(
    y: np.ndarray, n: int, rng: np.random.Generator, *, active: bool
) -> tuple[int, np.ndarray]:
    """A length-``n`` excerpt of ``y`` (looped if shorter); for speech the most active of a few
    random candidates, so an excerpt is never mostly pause."""
    if len(y) < n:
        y = np.tile(y, int(np.ceil(n / len(y))) + 1)
    best, best_start = None, 0
    for _ in range(4 if active else 1):
        start = int(rng.integers(0, len(y) - n + 1))
        seg = y[start : start + n]
        score = float(np.mean(np.abs(seg) > 0.1 * np.max(np.abs(seg)) + 1e-9)) if active else 0.0
        if best is None or score > best:
            best, best_start = score, start
    return best_start, y[best_start : best_start + n].astype(np.float64)


def make_mixtures(corpus: Corpus, folds: list[Fold], per_fold: int, seconds: float, seed: int = 0):
    n = int(seconds * SR)
    out: list[Mixture] = []
    for fold in folds:
        rng = np.random.default_rng([seed, fold.index])
        noises = [k for k in fold.test_noises if corpus.noise[k]["duration_s"] >= MIN_NOISE_SECONDS]
        speakers = list(fold.test_speakers)
        order_n = [noises[k] for k in rng.permutation(len(noises))]
        order_s = [speakers[k] for k in rng.permutation(len(speakers))]
        for i in range(per_fold):
            spk = order_s[i % len(order_s)]
            noi = order_n[i % len(order_n)]
            snr = float(SNRS[i % len(SNRS)])
            s0, s = _excerpt(corpus.split(spk)[1], n, rng, active=True)
            n0, v = _excerpt(corpus.split(noi)[1], n, rng, active=False)
            s *= SPEECH_RMS / np.sqrt(np.mean(s**2))
            v *= np.sqrt(np.sum(s**2) / (np.sum(v**2) * 10 ** (snr / 10)))
            mix = s + v
            peak = float(np.max(np.abs(mix)))
            if peak > 0.95:
                s, v, mix = s * 0.95 / peak, v * 0.95 / peak, mix * 0.95 / peak
            out.append(
                Mixture(
                    ident=f"f{fold.index}_{i:02d}_{spk}_{noi}_{snr:+.0f}dB",
                    fold=fold.index,
                    speaker=spk,
                    noise=noi,
                    snr=snr,
                    speech=s,
                    noise_sig=v,
                    mix=mix,
                    info={"speech_start": s0, "noise_start": n0},
                )
            )
    return out


# -- peers --------------------------------------------------------------------------------------


def _min_stat_bias(alpha: float, D: int, n: int = 20000, seed: int = 0) -> float:
    """E[P] / E[min over D frames of the alpha-smoothed periodogram] for Gaussian noise (the bias
    the minimum has to be multiplied by), by simulation with a fixed seed."""
    rng = np.random.default_rng(seed)
    P = rng.exponential(1.0, size=(n + 10 * D,))
    S = np.empty_like(P)
    acc = 1.0
    for t, p in enumerate(P):
        acc = alpha * acc + (1 - alpha) * p
        S[t] = acc
    from scipy.ndimage import minimum_filter1d

    m = minimum_filter1d(S[5 * D :], size=D)
    return float(1.0 / np.mean(m))


_BIAS: dict[tuple[float, int], float] = {}


def min_stat_noise(P: np.ndarray, *, alpha_s: float, frames: int) -> np.ndarray:
    """Minimum-statistics noise PSD of the periodogram ``P`` (n_freq, n_frames): ``P`` smoothed
    over time, its minimum over a centred window of ``frames``, times the bias of that minimum
    for Gaussian noise (Martin 2001, simplified)."""
    from scipy.ndimage import minimum_filter1d

    T = P.shape[1]
    S = np.empty_like(P)
    acc = P[:, : max(1, min(T, 8))].mean(axis=1)
    for t in range(T):
        acc = alpha_s * acc + (1 - alpha_s) * P[:, t]
        S[:, t] = acc
    key = (alpha_s, frames)
    if key not in _BIAS:
        _BIAS[key] = _min_stat_bias(alpha_s, frames)
    return np.maximum(minimum_filter1d(S, size=min(frames, T), axis=1) * _BIAS[key], 1e-12)


def dd_gain(
    P: np.ndarray, lam: np.ndarray, *, alpha_dd: float = 0.98, xi_min_db: float = -15.0
) -> np.ndarray:
    """Wiener gain ``ξ / (1 + ξ)`` with the decision-directed a-priori SNR (Ephraim & Malah
    1984) of the periodogram ``P`` for the noise PSD ``lam`` (both (n_freq, n_frames))."""
    gamma = P / lam
    xi_min = 10 ** (xi_min_db / 10)
    G = np.empty_like(P)
    prev = np.zeros(P.shape[0])  # |Â_{t−1}|² / λ_{t−1}
    for t in range(P.shape[1]):
        xi = alpha_dd * prev + (1 - alpha_dd) * np.maximum(gamma[:, t] - 1.0, 0.0)
        xi = np.maximum(xi, xi_min)
        g = xi / (1.0 + xi)
        G[:, t] = g
        prev = (g**2) * gamma[:, t]
    return G


def dd_wiener(
    y: np.ndarray,
    sr: int = SR,
    *,
    n_fft: int = 512,
    hop: int = 128,
    alpha_dd: float = 0.98,
    xi_min_db: float = -15.0,
    alpha_s: float = 0.85,
    window_s: float = 1.5,
) -> np.ndarray:
    """Decision-directed Wiener filter (Ephraim & Malah 1984 a-priori SNR, Wiener gain
    ``G = ξ / (1 + ξ)``) with a minimum-statistics noise PSD (Martin 2001, simplified).

    * STFT 32 ms Hann, 75 % overlap; periodogram ``P = |Y|²``.
    * Noise PSD ``λ``: the periodogram smoothed over time (``S_t = α_s S_{t−1} + (1−α_s) P_t``),
      its minimum over a centred window of ``window_s`` seconds, times the bias of that minimum
      for Gaussian noise (computed by simulation, :func:`_min_stat_bias`); the offline
      (centred) window is fair to a whole-file method.
    * A-posteriori SNR ``γ = P / λ``; a-priori SNR
      ``ξ_t = α_dd |Â_{t−1}|² / λ_{t−1} + (1 − α_dd) max(γ_t − 1, 0)``, floored at ``ξ_min``
      (−15 dB, which also bounds the gain's attenuation: no musical-noise holes); ``Â = G Y``.
    """
    from scipy.signal import istft as sp_istft
    from scipy.signal import stft as sp_stft

    _, _, Y = sp_stft(y, fs=sr, window="hann", nperseg=n_fft, noverlap=n_fft - hop)
    P = np.abs(Y) ** 2
    lam = min_stat_noise(P, alpha_s=alpha_s, frames=max(3, round(window_s * sr / hop)))
    G = dd_gain(P, lam, alpha_dd=alpha_dd, xi_min_db=xi_min_db)
    _, x = sp_istft(G * Y, fs=sr, window="hann", nperseg=n_fft, noverlap=n_fft - hop)
    out = np.zeros(len(y))
    out[: min(len(y), len(x))] = x[: len(y)]
    return out


def noisereduce_peer(y: np.ndarray, stationary: bool) -> np.ndarray:
    import noisereduce as nr

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return np.asarray(nr.reduce_noise(y=y, sr=SR, stationary=stationary, n_jobs=1), float)


def oracle_peer(m: Mixture) -> np.ndarray:
    from nmfsep.metrics import oracle_wiener_estimates
    from nmfsep.spectral import STFTConfig

    # the library's STFT at 16 kHz (128 ms window, 75 % overlap)
    config = STFTConfig(n_fft=2048, hop_length=512)
    return oracle_wiener_estimates(np.stack([m.speech, m.noise_sig]), config=config)[0]


def recording_model(corpus: Corpus, ident: str, use_cache: bool = True, exemplars: int = 0):
    """The library-default model of one recording (source ``"x"``), learned on the first 20 s of
    its training part, with ``exemplars`` exemplar bases (``train --exemplars``) beside the
    learned ones (cached per recording and count)."""
    from nmfsep.model import load_model
    from nmfsep.separation import train_model

    path = CACHE / ("per_case" if not exemplars else f"per_case_ex{exemplars}") / f"{ident}.npz"
    if use_cache and path.is_file():
        return load_model(path)
    y = corpus.split(ident)[0][: int(PER_CASE_TRAIN_SECONDS * SR)]
    model = train_model({"x": [y[np.newaxis]]}, sr=SR, random_state=0, exemplars=exemplars)
    path.parent.mkdir(parents=True, exist_ok=True)
    model.save(path)
    return model


def recording_bases(corpus: Corpus, ident: str, use_cache: bool = True, exemplars: int = 0):
    """The bases of :func:`recording_model`."""
    return recording_model(corpus, ident, use_cache, exemplars).bases["x"]


def per_case_model(corpus: Corpus, m: Mixture, use_cache: bool, exemplars: int = 0):
    """Library-default model trained on this speaker's and this noise's training parts
    (each source learned on its own, cached per recording, then put side by side; with
    ``exemplars``, the separation settings that such a model recommends)."""
    from nmfsep.model import NMFModel

    models = {
        name: recording_model(corpus, ident, use_cache, exemplars)
        for name, ident in (("speech", m.speaker), ("noise", m.noise))
    }
    ref = models["speech"]
    return NMFModel(
        bases={name: model.bases["x"] for name, model in models.items()},
        sr=SR,
        stft=ref.stft,
        beta=ref.beta,
        context=ref.context,
        metadata={"separation": dict(ref.metadata.get("separation", {}))},
    )


# -- scoring ------------------------------------------------------------------------------------


def score(ref: np.ndarray, est: np.ndarray, mix: np.ndarray) -> dict[str, float]:
    from pystoi import stoi

    from nmfsep.metrics import bss_eval, si_sdr

    n = min(len(ref), len(est), len(mix))
    ref, est, mix = ref[:n], np.asarray(est[:n], float), mix[:n]
    return {
        "sdri": float(bss_eval(ref, est)["sdr"][0]) - float(bss_eval(ref, mix)["sdr"][0]),
        "si_sdri": float(si_sdr(ref, est)) - float(si_sdr(ref, mix)),
        "stoi": float(stoi(ref, est, SR, extended=False)),
    }


def peer_scores(
    corpus: Corpus, m: Mixture, use_cache: bool, methods: list[str] | None = None
) -> dict[str, dict[str, float]]:
    """Scores of the peers on one mixture (cached per mixture, filled in method by method)."""
    path = CACHE / "peers" / f"{m.ident}.json"
    out: dict[str, dict[str, float]] = {}
    if use_cache and path.is_file():
        out = json.loads(path.read_text())
    todo = [k for k in ["mixture", *(PEERS if methods is None else methods)] if k not in out]
    if not todo:
        return out
    from pystoi import stoi

    from nmfsep.separation import separate

    for k in todo:
        if k == "mixture":
            out[k] = {"stoi": float(stoi(m.speech, m.mix, SR, extended=False))}
        elif k in ("nr_stationary", "nr_nonstationary"):
            out[k] = score(m.speech, noisereduce_peer(m.mix, k == "nr_stationary"), m.mix)
        elif k == "dd_wiener":
            out[k] = score(m.speech, dd_wiener(m.mix), m.mix)
        elif k == "supervised":
            model = per_case_model(corpus, m, use_cache)
            y = m.mix.astype(np.float32)[np.newaxis]
            out[k] = score(m.speech, separate(y, SR, model).sources["speech"][0], m.mix)
        elif k == "oracle":
            out[k] = score(m.speech, oracle_peer(m), m.mix)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out))
    return out


# -- built-in path ------------------------------------------------------------------------------


def fold_model(corpus: Corpus, recipe: Any, fold: Fold, use_cache: bool):
    from nmfsep.model import load_model

    path = CACHE / "folds" / f"{recipe.train_key()}_{fold.key()}.npz"
    if use_cache and path.is_file():
        return load_model(path)
    speech = {k: corpus.audio(k) for k in fold.train_speakers}
    noise = {k: corpus.audio(k) for k in fold.train_noises}
    categories = {k: corpus.noise[k]["category"] for k in fold.train_noises}
    model = recipe.train(speech, noise, categories)
    path.parent.mkdir(parents=True, exist_ok=True)
    model.save(path)
    return model


def cpu_per_audio_second(fn, y: np.ndarray, repeats: int = 3) -> float:
    fn(y)  # warm-up (numba compilation, caches)
    best = float("inf")
    for _ in range(repeats):
        t = time.process_time()
        fn(y)
        best = min(best, time.process_time() - t)
    return best / (len(y[-1]) / SR)


def speed_ratio(recipe: Any, model: Any, mixtures: list[Mixture]) -> dict[str, float]:
    """CPU time per audio second of the recipe's separation over that of the current default
    model's recipe (32 + 32 bases, context 5, n_fft 2048, 20 iterations, ``separate`` defaults)
    on the same 20 s of mixtures."""
    import _generalise_methods as gm

    y = np.concatenate([m.mix for m in mixtures[:4]]).astype(np.float32)[np.newaxis]
    ref_model = gm.reference_model_like(model)
    t_ref = cpu_per_audio_second(lambda x: gm.separate_default(ref_model, x), y)
    t_new = cpu_per_audio_second(lambda x: recipe.separate(model, x), y)
    return {"reference_cpu_s_per_s": t_ref, "builtin_cpu_s_per_s": t_new, "ratio": t_new / t_ref}


# -- report -------------------------------------------------------------------------------------


def _mean(rows: list[dict], method: str, metric: str) -> float:
    vals = [r[method][metric] for r in rows if method in r and metric in r[method]]
    return float(np.mean(vals)) if vals else float("nan")


def _cell(rows: list[dict], m: str, bold: bool = False) -> str:
    sdri = f"{_mean(rows, m, 'sdri'):.2f}"
    return (
        f"{'**' + sdri + '**' if bold else sdri} / {_mean(rows, m, 'si_sdri'):.2f} / "
        f"{_mean(rows, m, 'stoi'):.3f}"
    )


def print_report(rows: list[dict], n_folds: int, title: str) -> None:
    methods = ["builtin", *PEERS]
    print(f"\n### {title}: mean SDRi / SI-SDRi (dB) / STOI\n")
    print("| set | n | mixture STOI | " + " | ".join(LABELS[m] for m in methods) + " |")
    print("|---|---:|---:|" + "---:|" * len(methods))
    groups = [("**all**", rows)] + [
        (f"fold {f}", [r for r in rows if r["fold"] == f]) for f in range(n_folds)
    ]
    groups += [(f"SNR {s:+d} dB", [r for r in rows if r["snr"] == s]) for s in SNRS]
    for name, sub in groups:
        if not sub:
            continue
        cells = [_cell(sub, m) for m in methods]
        print(
            f"| {name} | {len(sub)} | {_mean(sub, 'mixture', 'stoi'):.3f} | "
            + " | ".join(cells)
            + " |"
        )
    b = np.array([r["builtin"]["sdri"] for r in rows])
    o = np.array([r["oracle"]["sdri"] for r in rows])
    print()
    print(
        f"* built-in mean SDRi {b.mean():.2f} dB (target ≥ 6), "
        f"{100 * b.mean() / o.mean():.0f} % of the oracle's {o.mean():.2f} dB (target ≥ 50 %); "
        f"median {np.median(b):.2f}, worst {b.min():.2f}"
    )
    for peer in ("nr_stationary", "nr_nonstationary", "dd_wiener", "supervised"):
        p = np.array([r[peer]["sdri"] for r in rows])
        print(f"* built-in above {LABELS[peer]} on {100 * np.mean(b > p):.0f} % of mixtures")
    both = np.array(
        [
            r["builtin"]["sdri"]
            > max(r["nr_stationary"]["sdri"], r["nr_nonstationary"]["sdri"], r["dd_wiener"]["sdri"])
            for r in rows
        ]
    )
    print(
        f"* built-in above all of noisereduce (both) and DD-Wiener on {100 * both.mean():.0f} % "
        "(target ≥ 90 %)"
    )
    low = [r for r in rows if r["snr"] <= 5]
    bad = [r for r in low if r["builtin"]["sdri"] < 0]
    print(
        f"* mixtures with built-in SDRi < 0 at SNR ≤ 5 dB: {len(bad)} of {len(low)} (target 0)"
        + (": " + ", ".join(f"{r['id']} ({r['builtin']['sdri']:.2f})" for r in bad) if bad else "")
    )


def run_dev(data: Path, recipe: Any) -> list[dict]:
    """The shipped model on the dev set's speech cases, next to the same peers."""
    import soundfile as sf

    from nmfsep.model import load_model
    from nmfsep.separation import separate, train_model

    shipped = load_model(ROOT / "nmfsep" / "data" / "default_model.npz")
    rows = []
    for meta in json.loads((data / "cases.json").read_text()):
        if meta["kind"] != "speech":
            continue
        d = data / meta["case"]
        mix = sf.read(d / "mix.wav", dtype="float64")[0]
        s = sf.read(d / "speech.wav", dtype="float64")[0]
        v = sf.read(d / "noise.wav", dtype="float64")[0]
        m = Mixture(meta["case"], -1, "", "", float(meta.get("snr_db", 0)), s, v, mix)
        row: dict[str, Any] = {"id": meta["case"]}
        row["builtin"] = score(s, recipe.separate(shipped, mix.astype(np.float32)[np.newaxis]), mix)
        row["nr_stationary"] = score(s, noisereduce_peer(mix, True), mix)
        row["nr_nonstationary"] = score(s, noisereduce_peer(mix, False), mix)
        row["dd_wiener"] = score(s, dd_wiener(mix), mix)
        tr = {
            n: [sf.read(d / f"train_{n}.wav", dtype="float32")[0][np.newaxis]]
            for n in ("speech", "noise")
        }
        # the plain per-case path, as the folds' "supervised" peer (no trained-path refiner)
        est = separate(mix.astype(np.float32)[np.newaxis], SR, train_model(tr, sr=SR, refiner=None))
        row["supervised"] = score(s, est.sources["speech"][0], mix)
        row["oracle"] = score(s, oracle_peer(m), mix)
        rows.append(row)
    methods = ["builtin", *PEERS]
    print("\n### Dev set (shipped model): SDRi / SI-SDRi (dB) / STOI\n")
    print("| case | " + " | ".join(LABELS[m] for m in methods) + " |")
    print("|---|" + "---:|" * len(methods))
    for r in rows:
        print(
            f"| {r['id']} | "
            + " | ".join(
                f"{r[m]['sdri']:.2f} / {r[m]['si_sdri']:.2f} / {r[m]['stoi']:.3f}" for m in methods
            )
            + " |"
        )
    print("| **mean** | " + " | ".join(_cell(rows, m, bold=True) for m in methods) + " |")
    return rows


def main() -> None:
    import _generalise_methods as gm

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 folds x 8 mixtures")
    parser.add_argument("--folds", type=int, default=None, help="number of folds (default 5)")
    parser.add_argument("--per-fold", type=int, default=None, help="test mixtures per fold (16)")
    parser.add_argument("--seconds", type=float, default=5.0, help="mixture length")
    parser.add_argument("--only-folds", type=str, default=None, help="e.g. 0,2: run these folds")
    parser.add_argument("--recipe", default=gm.SHIPPED, choices=sorted(gm.RECIPES))
    parser.add_argument("--data", type=Path, default=None, help="also score the dev set DIR")
    parser.add_argument("--no-speed", action="store_true", help="skip the speed measurement")
    parser.add_argument("--no-cache", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=ROOT / "bench" / "out" / "generalise.json")
    args = parser.parse_args()
    n_folds = args.folds or 5
    per_fold = args.per_fold or (8 if args.quick else 16)
    use_cache = not args.no_cache
    recipe = gm.RECIPES[args.recipe]
    t0 = time.perf_counter()

    corpus = Corpus()
    folds = make_folds(corpus, n_folds, args.seed)
    if args.quick and args.only_folds is None:
        args.only_folds = "0,1,2"
    if args.only_folds:
        keep = {int(x) for x in args.only_folds.split(",")}
        folds = [f for f in folds if f.index in keep]
    mixtures = make_mixtures(corpus, folds, per_fold, args.seconds, args.seed)
    print(
        f"{len(folds)} folds, {len(mixtures)} test mixtures of {args.seconds:g} s; recipe "
        f"{recipe.name!r}: {recipe.describe()}",
        flush=True,
    )
    rows: list[dict] = []
    model = None
    for fold in folds:
        t = time.perf_counter()
        model = fold_model(corpus, recipe, fold, use_cache)
        print(
            f"fold {fold.index}: {len(fold.test_speakers)} test speakers, "
            f"{len(fold.test_noises)} test noises; model {time.perf_counter() - t:.0f} s",
            flush=True,
        )
        for m in (x for x in mixtures if x.fold == fold.index):
            row: dict[str, Any] = {"id": m.ident, "fold": m.fold, "snr": int(m.snr)}
            row.update(peer_scores(corpus, m, use_cache))
            est = recipe.separate(model, m.mix.astype(np.float32)[np.newaxis])
            row["builtin"] = score(m.speech, est, m.mix)
            rows.append(row)
        sub = [r for r in rows if r["fold"] == fold.index]
        print(
            f"  built-in {_mean(sub, 'builtin', 'sdri'):.2f} dB, DD-Wiener "
            f"{_mean(sub, 'dd_wiener', 'sdri'):.2f}, "
            f"supervised {_mean(sub, 'supervised', 'sdri'):.2f}, "
            f"oracle {_mean(sub, 'oracle', 'sdri'):.2f} ({time.perf_counter() - t0:.0f} s)",
            flush=True,
        )
    print_report(rows, n_folds, f"Held-out speakers x held-out noises, recipe {recipe.name!r}")
    result: dict[str, Any] = {"recipe": recipe.name, "rows": rows}
    if not args.no_speed and model is not None:
        sp = speed_ratio(recipe, model, mixtures)
        result["speed"] = sp
        print(
            f"* speed: {sp['builtin_cpu_s_per_s'] * 1000:.1f} ms CPU per second of audio = "
            f"{1 / sp['builtin_cpu_s_per_s']:.0f}x real time (issue target ≥ 50x) vs "
            f"{sp['reference_cpu_s_per_s'] * 1000:.1f} ms for 32 + 32 fixed bases: "
            f"ratio {sp['ratio']:.2f}"
        )
    if args.data is not None:
        result["dev"] = run_dev(args.data, recipe)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=1))
    print(f"\n({time.perf_counter() - t0:.0f} s; per-mixture numbers in {args.json})")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    main()
