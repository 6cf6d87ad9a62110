"""Quality methods of issue 12: unsupervised grouping (``cluster``) and phase reconstruction.

    OMP_NUM_THREADS=1 .venv/bin/python bench/methods.py cluster [--per-fold M] [--methods a,b]
        [--only dev,music,folds,tune]
        [--factoriser mu|vb] [--components K] [--vb-fixed] [--vb-level X]
    OMP_NUM_THREADS=1 .venv/bin/python bench/methods.py phase [--iters 0,1,2,4]
    OMP_NUM_THREADS=1 .venv/bin/python bench/methods.py continuity [--values 0,1] [--source other]
    OMP_NUM_THREADS=1 .venv/bin/python bench/methods.py hpss [--strengths 1,2,3] [--speech]

Cases, all scored on the wanted source (speech; the pitched instrument for music):

* **dev**: the speech cases of ``../shared/data`` and ``sample_audio/``, and the music case
  (guitar vs drums);
* **folds**: unseen speakers x unseen noises from ``bench/generalise.py`` (its ``Corpus``,
  ``make_folds`` and ``make_mixtures``; 5 folds, ``--per-fold`` mixtures of 5 s each, -5/0/5/10 dB);
* **music**: percussion vs pitched-instrument mixes of the corpus stems
  (``../shared/corpus/music``, licences in its README) at 0 dB, 4 s: bongo (tabla-like pitched
  hand drum) vs guitar, timpani vs cello, drum kit vs piano, jungle break vs latin guitar;
* **tune** (``--only tune``): a tuning set for choices of the cluster path, disjoint from the
  above (:func:`tune_cases`): the folds' test speakers x noises from the *training* parts of
  their recordings, and twelve other pairs of corpus stems.

``cluster`` runs the library's ``cluster`` path (frame sample, NMF, grouping, separation pass
with the grouped bases fixed) once per grouping method on the same factorisation, next to the
mean of 10 random balanced assignments of the same bases (the random floor) and, for music,
librosa HPSS (margin 3; the harmonic part as the pitched source); each row also records the
factorisation's CPU time, its K (``--factoriser vb``: chosen by the bound) and the count
``n_sources="auto"`` picks from the same bases. ``phase`` runs trained
separation (``train`` on the case's clips / the per-case 20 s of the folds) with
``phase_iters`` N. Scores: BSS-eval SDRi (512 taps), SI-SDRi, STOI (pystoi).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
DATA = ROOT.parent / "shared" / "data"
MUSIC = ROOT.parent / "shared" / "corpus" / "music"
MUSIC_PAIRS = [
    ("perc_bongo_gcompris", "inst_guitar_gcompris"),
    ("perc_timpani_gcompris", "inst_cello_gcompris"),
    ("perc_drum_kit_gcompris", "inst_piano_gcompris"),
    ("perc_jungle_break_lmms", "inst_latin_guitar1_lmms"),
]
warnings.filterwarnings("ignore")


def _read(path: Path) -> tuple[np.ndarray, int]:
    import soundfile as sf

    y, sr = sf.read(path, dtype="float64", always_2d=True)
    return y.mean(axis=1), int(sr)


def dev_cases() -> list[dict]:
    cases = []
    if (DATA / "cases.json").is_file():
        for meta in json.loads((DATA / "cases.json").read_text()):
            d = DATA / meta["case"]
            speech = meta["kind"] == "speech"
            w, o = ("speech", "noise") if speech else ("target", "background")
            mix, sr = _read(d / "mix.wav")
            cases.append(
                {
                    "name": meta["case"][:3] + ("" if speech else "_music"),
                    "group": "dev" if speech else "music",
                    "mix": mix,
                    "ref": _read(d / f"{w}.wav")[0],
                    "other": _read(d / f"{o}.wav")[0],
                    "sr": sr,
                    "train": (d / f"train_{w}.wav", d / f"train_{o}.wav"),
                }
            )
    s = ROOT / "sample_audio"
    if (s / "mix.wav").is_file():
        mix, sr = _read(s / "mix.wav")
        cases.append(
            {
                "name": "sample",
                "group": "dev",
                "mix": mix,
                "ref": _read(s / "speech.wav")[0],
                "other": _read(s / "noise.wav")[0],
                "sr": sr,
                "train": (s / "train_speech.wav", s / "train_noise.wav"),
            }
        )
    return cases


def music_cases(seconds: float = 4.0) -> list[dict]:
    out = []
    for perc, inst in MUSIC_PAIRS:
        p, sr = _read(MUSIC / f"{perc}.flac")
        t, _ = _read(MUSIC / f"{inst}.flac")
        n = min(int(seconds * sr), int(0.6 * len(p)), int(0.6 * len(t)))
        # the test excerpt is the first n samples; the rest of each stem is training material
        p0, t0 = p[:n], t[:n]
        p0 = p0 * np.sqrt(np.sum(t0**2) / np.sum(p0**2))  # 0 dB
        mix = t0 + p0
        g = 0.95 / max(0.95, float(np.max(np.abs(mix))))
        name = f"{perc.split('_')[1]}-{inst.split('_')[1]}"
        out.append(
            {
                "name": name,
                "group": "music",
                "mix": mix * g,
                "ref": t0 * g,
                "other": p0 * g,
                "sr": sr,
                "train": (t[n:], p[n:]),
            }
        )
    return out


def fold_cases(per_fold: int, seconds: float = 5.0) -> list[dict]:
    import generalise as gen

    corpus = gen.Corpus()
    folds = gen.make_folds(corpus, 5, 0)
    out = []
    for m in gen.make_mixtures(corpus, folds, per_fold, seconds, 0):
        out.append(
            {
                "name": m.ident,
                "group": f"fold{m.fold}",
                "mix": m.mix,
                "ref": m.speech,
                "other": m.noise_sig,
                "sr": gen.SR,
                "mixture": m,
                "corpus": corpus,
            }
        )
    return out


# A tuning set for choices of the cluster path, disjoint from the cases above: the same folds'
# test speakers and noises, excerpts from the *training* parts of their recordings (the fold
# cases take theirs from the test parts; the guide is still the fold's model, which has heard
# neither), and twelve other pairs of the corpus stems (none of the four music pairs above).
TUNE_MUSIC_PAIRS = [
    ("perc_snare_drum_gcompris", "inst_violin_gcompris"),
    ("perc_tambourine_gcompris", "inst_flute_traversiere_gcompris"),
    ("perc_maracas_gcompris", "inst_accordion_gcompris"),
    ("perc_castanets_gcompris", "inst_harp_gcompris"),
    ("perc_cymbal_gcompris", "inst_trumpet_gcompris"),
    ("perc_snare_drum_gcompris", "inst_saxophone_gcompris"),
    ("perc_tambourine_gcompris", "inst_electric_guitar_gcompris"),
    ("perc_maracas_gcompris", "inst_organ_gcompris"),
    ("perc_castanets_gcompris", "inst_clarinet_gcompris"),
    ("perc_cymbal_gcompris", "inst_steel_guitar_lmms"),
    ("inst_violin_gcompris", "inst_flute_lmms"),
    ("inst_organ_gcompris", "inst_trumpet_gcompris"),
]


def tune_cases(per_fold: int, seconds: float = 5.0) -> list[dict]:
    import generalise as gen

    class TrainingParts(gen.Corpus):
        def split(self, ident: str) -> tuple[np.ndarray, np.ndarray]:
            train, test = super().split(ident)
            return test, train  # make_mixtures takes the second part

    corpus = TrainingParts()
    folds = gen.make_folds(corpus, 5, 0)
    out = []
    for m in gen.make_mixtures(corpus, folds, per_fold, seconds, seed=7):
        out.append({"name": "tune_" + m.ident, "group": "tune-speech", "mix": m.mix,
                    "ref": m.speech, "other": m.noise_sig, "sr": gen.SR, "mixture": m,
                    "corpus": corpus})  # fmt: skip
    for perc, inst in TUNE_MUSIC_PAIRS:
        p, sr = _read(MUSIC / f"{perc}.flac")
        t, _ = _read(MUSIC / f"{inst}.flac")
        n = min(int(4.0 * sr), len(p), len(t))
        p0, t0 = p[:n], t[:n]
        p0 = p0 * np.sqrt(np.sum(t0**2) / np.sum(p0**2))  # 0 dB
        mix = t0 + p0
        g = 0.95 / max(0.95, float(np.max(np.abs(mix))))
        # the second stem is the "wanted" one: the pitched instrument (or the second of two)
        out.append({"name": f"tune_{perc.split('_')[1]}-{inst.split('_')[1]}",
                    "group": "tune-music", "mix": mix * g, "ref": t0 * g, "other": p0 * g,
                    "sr": sr})  # fmt: skip
    return out


def score(ref: np.ndarray, est: np.ndarray, mix: np.ndarray, sr: int) -> dict[str, float]:
    from pystoi import stoi

    from nmfsep.metrics import bss_eval, si_sdr

    n = min(len(ref), len(est), len(mix))
    ref, est, mix = ref[:n], np.asarray(est[:n], float), mix[:n]
    return {
        "sdri": float(bss_eval(ref, est)["sdr"][0]) - float(bss_eval(ref, mix)["sdr"][0]),
        "si_sdri": float(si_sdr(ref, est)) - float(si_sdr(ref, mix)),
        "stoi": float(stoi(ref, est, sr, extended=False)),
    }


def best_output(outputs: list[np.ndarray], ref: np.ndarray) -> np.ndarray:
    from nmfsep.metrics import si_sdr

    return max(outputs, key=lambda e: float(si_sdr(ref, np.asarray(e, float))))


# ------------------------------------------------------------------------------ cluster


def factorise(
    mix: np.ndarray, sr: int, options, vb_level: float | None = None, vb_fixed: bool = False
):
    """The cluster path's frame sample and factorisation (``options.factoriser``); with
    ``vb_level`` the VB data level is that multiple of :data:`nmfsep.bayes.LEVEL`; with
    ``vb_fixed`` VB runs with ``n_components`` only (no choice by the bound)."""
    from nmfsep.bayes import LEVEL, candidate_components, select_vb_nmf
    from nmfsep.unsupervised import FrameSampler
    from nmfsep.unsupervised import factorise as cluster_factorise

    sampler = FrameSampler(sr=sr, channels=1, options=options)
    sampler.push(mix.astype(np.float32)[None])
    V = sampler.finish()
    o = options
    if o.factoriser == "vb" and (vb_level is not None or vb_fixed):
        ks = (o.n_components,) if vb_fixed else candidate_components(o.n_components, minimum=4)
        res = select_vb_nmf(
            V, candidates=ks, level=LEVEL * (vb_level or 1.0), max_iter=o.max_iter, tol=o.tol,
            random_state=o.seed,
        )  # fmt: skip
    else:
        res = cluster_factorise(V, options=o)
    return V, res, sampler.config


def separate_with_labels(mix, sr, W, labels, config, options) -> list[np.ndarray]:
    from nmfsep.engine import Separator
    from nmfsep.model import NMFModel

    n = int(labels.max()) + 1
    model = NMFModel(
        bases={f"source{i + 1}": W[:, labels == i].astype(np.float32) for i in range(n)},
        sr=sr,
        stft=config,
        beta=options.beta,
    )
    sep = Separator(model, sr=sr, options=options.separate_options())
    a = sep.process(mix.astype(np.float32))
    b = sep.flush()
    return [np.concatenate([a[k], b[k]]) for k in model.source_names]


def hpss_harmonic(mix: np.ndarray) -> np.ndarray:
    import librosa

    h, _ = librosa.effects.hpss(mix.astype(np.float32), margin=3.0)
    return h


GUIDE_RECIPE = "nb_n64_free2n_tracked_bins7"
#: more ClusterOptions fields of the cluster runs (``--cluster-option name=value``)
CLUSTER_EXTRA: dict = {}


def guide_mask(c: dict, config) -> tuple[np.ndarray, np.ndarray]:
    """(n_freq, n_frames) speech power share of the mixture by a speech/noise model, in the
    cluster path's frames: for fold mixtures the fold's model (recipe :data:`GUIDE_RECIPE`,
    ``bench/generalise.py``; it has heard neither the test speaker nor the test noise), else
    the built-in model; and the model's speech estimate."""
    from nmfsep.separation import separate
    from nmfsep.spectral import stft

    if "mixture" in c and GUIDE_RECIPE != "per-case":
        import _generalise_methods as gm

        model, sep = guide_model_of(c), gm.RECIPES[GUIDE_RECIPE].sep
    elif "mixture" in c:
        model, sep = guide_model_of(c), {}
    else:
        model, sep = "default", {}
    mix = c["mix"].astype(np.float32)
    res = separate(mix, c["sr"], model, **sep)
    s = sum(v for k, v in res.sources.items() if k.startswith("speech"))[0]
    S = np.abs(stft(s, config)) ** 2
    N = np.abs(stft(mix - s, config)) ** 2
    return S / np.maximum(S + N, 1e-20), s


def guide_model_of(c: dict):
    if "mixture" in c and GUIDE_RECIPE == "per-case":  # the per-case trained model
        import generalise as gen

        return gen.per_case_model(c["corpus"], c["mixture"], True)
    if "mixture" in c:
        import _generalise_methods as gm
        import generalise as gen

        recipe = gm.RECIPES[GUIDE_RECIPE]
        fold = gen.make_folds(c["corpus"], 5, 0)[c["mixture"].fold]
        return gen.fold_model(c["corpus"], recipe, fold, True)
    from nmfsep.model import default_model

    return default_model()


def frame_guide(c: dict, V: np.ndarray, sr: int, config, free: int = 0, it: int = 50):
    """Speech power share of the sampled frames ``V`` by the model's bases mapped onto the
    cluster grid (the centre frame of each stacked basis; no context, no gain tracking): KL
    activations with the bases fixed (plus ``free`` free bases, counted as noise)."""
    from nmfsep.engine import map_bases
    from nmfsep.nmf import fit_nmf

    model = guide_model_of(c)
    ctx = model.context
    parts = {}
    for name, W in model.bases.items():
        Wm, n_mod = map_bases(W, model.sr, model.stft, sr, config, context=ctx)
        Wc = Wm.reshape(ctx, n_mod, -1)[ctx // 2]
        full = np.full((V.shape[0], Wc.shape[1]), 1e-9, np.float32)
        full[:n_mod] = Wc
        parts[name] = full
    speech = np.concatenate([w for k, w in parts.items() if k.startswith("speech")], 1)
    noise = np.concatenate([w for k, w in parts.items() if not k.startswith("speech")], 1)
    rng = np.random.default_rng(0)
    Wf = rng.uniform(0.1, 1.0, (V.shape[0], free)).astype(np.float32)
    W = np.concatenate([speech, noise, Wf], 1)
    W = W / np.maximum(np.linalg.norm(W, axis=0), 1e-12)
    fixed = np.arange(speech.shape[1] + noise.shape[1])
    res = fit_nmf(V, W=W, beta=1.0, fixed_W=fixed if free else True, max_iter=it, tol=0.0,
                  random_state=0, compute_loss=False)  # fmt: skip
    ks = speech.shape[1]
    S = res.W[:, :ks] @ res.H[:ks]
    return S / np.maximum(res.W @ res.H, 1e-20)


def library_guided(c: dict, features: str = "guided") -> list[np.ndarray]:
    """``cluster --features guided`` through the library (:func:`nmfsep.cluster_separate`),
    with the built-in model replaced by the fold's model (and its separation settings) for
    fold mixtures, so that the guide has heard neither the test speaker nor the test noise."""
    import dataclasses
    from unittest import mock

    from nmfsep.separation import cluster_separate

    mix = c["mix"].astype(np.float32)
    if "mixture" not in c:
        res, _ = cluster_separate(mix, c["sr"], features=features)
    else:
        import _generalise_methods as gm

        model = guide_model_of(c)
        sep = gm.RECIPES[GUIDE_RECIPE].sep
        model = dataclasses.replace(model, metadata={**model.metadata, "separation": sep})
        with mock.patch("nmfsep.model.default_model", return_value=model):
            res, _ = cluster_separate(mix, c["sr"], features=features)
    c["lib_share"] = float(res.settings["speech_share"])
    return [v[0] for v in res.sources.values()]


def variant_labels(
    m: str, W, H, perc, sr: int, n_fft: int, fr: float, seed: int, guide=None
) -> np.ndarray:
    """Two-source labels of the bases by ``m``: a :data:`nmfsep.clustering.ALL_KINDS` method,
    or a bench-only variant (issue 12, item 5; not in the library):

    * ``mfcc0:n=N:drop1:e=P`` -- the ``mfcc0`` features with N coefficients after c0 (default
      20), ``drop1`` drops c1, ``e=P`` weighs each basis in k-means by its energy
      ``(||W_k||_1 ||H_k||_1)^P``;
    * ``mfcc0+mod:w=X[:e=P]`` -- those features joined with the three z-scored modulation
      cues (:func:`nmfsep.clustering.modulation_scores`) times ``X / sqrt(3)``;
    * ``min-corr:a/b/...`` -- of the partitions by methods a, b, ..., the one with the lowest
      :func:`nmfsep.clustering.envelope_correlation`;
    * ``agree:a/b/...`` -- agreement ensemble: average-linkage clustering of the fraction of
      those partitions that put two bases together.
    """
    import scipy.fft
    from scipy.cluster.hierarchy import fcluster, linkage
    from scipy.spatial.distance import squareform
    from sklearn.cluster import KMeans

    from nmfsep import clustering as cl

    head, _, rest = m.partition(":")
    if head == "guidef":
        share = cl.percussive_share(W, H, guide)
        return cl._split_1d(share)
    if head == "guide":  # each basis's share of its part W_k H_k on the guide's speech mask
        share = cl.percussive_share(W, H, guide[:, : H.shape[1]])
        t = rest or "split"
        labels = (share > float(t)).astype(np.int64) if t != "split" else None
        return cl._split_1d(share) if labels is None or labels.min() == labels.max() else labels
    if not rest:
        return cl.group_bases(
            W, n_clusters=2, method=m, H=H, percussive=perc, sr=sr, n_fft=n_fft,
            frame_rate=fr, random_state=seed,
        )  # fmt: skip
    if head in ("min-corr", "agree"):
        parts = [variant_labels(x, W, H, perc, sr, n_fft, fr, seed, guide) for x in rest.split("/")]
        if head == "min-corr":
            return min(parts, key=lambda lab: cl.envelope_correlation(W, H, lab))
        together = np.mean([(p[:, None] == p[None, :]).astype(float) for p in parts], axis=0)
        dist = 1.0 - together
        np.fill_diagonal(dist, 0.0)
        tree = linkage(squareform(dist, checks=False), "average")
        labels = (fcluster(tree, 2, "maxclust") - 1).astype(np.int64)
        return labels if labels.max() == 1 else parts[0]  # ties can leave one cluster
    opts = dict(x.partition("=")[::2] for x in rest.split(":"))
    n = int(opts.get("n", 20))
    logmel = cl._log_mel(W, sr, n_fft, power=2.0)
    ceps = scipy.fft.dct(logmel, type=2, norm="ortho", axis=1)[:, : n + 1]
    if "drop1" in opts:
        ceps = np.delete(ceps, 1, axis=1)
    X = cl._unit_rows(ceps)
    if head == "mfcc0+mod":
        z = cl.modulation_scores(W, H, sr=sr, n_fft=n_fft, frame_rate=fr)
        z = np.stack([cl._zscore(col) for col in z.T], axis=1)
        X = np.concatenate([X, float(opts["w"]) * z / np.sqrt(3)], axis=1)
    elif head != "mfcc0":
        raise ValueError(f"unknown variant {m!r}")
    weight = None
    if "e" in opts:
        weight = (W.sum(axis=0) * H.sum(axis=1)) ** float(opts["e"])
    km = KMeans(n_clusters=2, n_init=10, random_state=seed)
    return km.fit_predict(np.round(X, 12), sample_weight=weight).astype(np.int64)


def run_cluster(
    cases: list[dict],
    methods: list[str],
    floor: bool,
    factoriser: str = "mu",
    vb_level: float | None = None,
    components: int = 32,
    vb_fixed: bool = False,
) -> list[dict]:
    from nmfsep.clustering import choose_n_sources, hpss_mask, speech_shares
    from nmfsep.options import ClusterOptions

    rows = []
    for c in cases:
        t0 = time.process_time()
        o = ClusterOptions(factoriser=factoriser, n_components=components, **CLUSTER_EXTRA)
        V, res, config = factorise(c["mix"], c["sr"], o, vb_level, vb_fixed)
        cpu = time.process_time() - t0
        k = int(res.W.shape[1])
        perc = hpss_mask(V)
        fr = c["sr"] / config.hop_length
        row: dict = {"case": c["name"], "group": c["group"], "factorise_cpu": cpu, "K": k}
        # --n-sources auto on the same bases (2-4 by cosine silhouette; every case has 2)
        row["auto_n"] = choose_n_sources(
            res.W, candidates=tuple(n for n in (2, 3, 4) if n < k) or (2,), sr=c["sr"],
            n_fft=config.n_fft, random_state=o.seed,
        )  # fmt: skip
        guide, fguide = None, {}
        for m in methods:
            if m.startswith("guidef"):
                opts = dict(x.partition("=")[::2] for x in m.split(":")[1:])
                fguide[m] = frame_guide(c, V, c["sr"], config, int(opts.get("free", 0)))
        if any(m.startswith("guide") and not m.startswith("guidef") for m in methods):
            guide, speech = guide_mask(c, config)
            row["guide_model"] = score(c["ref"], speech, c["mix"], c["sr"])
            row["guide_share"] = float(np.sum(speech**2) / np.sum(c["mix"] ** 2))
            row["guide_mean"] = float(np.sum(guide * V**2) / np.sum(V**2))
            assert guide.shape[1] == res.H.shape[1], "frames of the guide and the sample differ"
        for m in methods:
            if m in ("lib-guided", "lib-auto"):
                outs = library_guided(c, m[4:])
                row[m] = score(c["ref"], best_output(outs, c["ref"]), c["mix"], c["sr"])
                row["lib_share"] = c["lib_share"]
                continue
            if m.startswith("ens"):  # the guided cluster's speech and the model's, averaged
                w = float(m.partition(":")[2] or 0.5)
                labels = variant_labels("guide", res.W, res.H, perc, c["sr"], config.n_fft, fr,
                                        o.seed, guide)  # fmt: skip
                outs = separate_with_labels(c["mix"], c["sr"], res.W, labels, config, o)
                shares = speech_shares(res.W, res.H, guide)
                lab = int(np.argmax([shares[labels == i].mean() for i in range(2)]))
                n = min(len(outs[lab]), len(speech))
                est = w * outs[lab][:n] + (1 - w) * speech[:n]
                row[m] = score(c["ref"], est, c["mix"], c["sr"])
                continue
            labels = variant_labels(
                m, res.W, res.H, perc, c["sr"], config.n_fft, fr, o.seed,
                fguide.get(m, guide),
            )  # fmt: skip
            outs = separate_with_labels(c["mix"], c["sr"], res.W, labels, config, o)
            row[m] = score(c["ref"], best_output(outs, c["ref"]), c["mix"], c["sr"])
        if floor:
            rng = np.random.default_rng(0)
            vals = []
            for _ in range(10):
                labels = rng.permutation(np.arange(k) % 2)
                outs = separate_with_labels(c["mix"], c["sr"], res.W, labels, config, o)
                vals.append(score(c["ref"], best_output(outs, c["ref"]), c["mix"], c["sr"]))
            row["random"] = {k: float(np.mean([v[k] for v in vals])) for k in vals[0]}
        if c["group"] in ("music", "tune-music"):
            row["librosa_hpss"] = score(c["ref"], hpss_harmonic(c["mix"]), c["mix"], c["sr"])
        rows.append(row)
        line = "  ".join(f"{m} {v['sdri']:+.1f}" for m, v in row.items() if isinstance(v, dict))
        print(
            f"{c['name'][:34]:34s} {line}  K={k} auto={row['auto_n']} factorise {cpu:.2f} s "
            f"({time.process_time() - t0:.0f} s)",
            flush=True,
        )
    return rows


def summarise(rows: list[dict], title: str) -> None:
    methods = [k for k, v in rows[0].items() if isinstance(v, dict)]
    groups = {"dev (speech)": [r for r in rows if r["group"] == "dev"],
              "folds (speech)": [r for r in rows if r["group"].startswith("fold")],
              "music": [r for r in rows if r["group"] == "music"],
              "tune (speech)": [r for r in rows if r["group"] == "tune-speech"],
              "tune (music)": [r for r in rows if r["group"] == "tune-music"]}  # fmt: skip
    print(f"\n{title}")
    print(f"| cases | metric | {' | '.join(methods)} |")
    print("|---|---|" + "---|" * len(methods))
    for g, rs in groups.items():
        if not rs:
            continue
        for metric in ("sdri", "si_sdri", "stoi"):
            vals = [np.mean([r[m][metric] for r in rs if m in r]) for m in methods]
            fmt = "{:.3f}" if metric == "stoi" else "{:+.2f}"
            print(
                f"| {g} ({len(rs)}) | {metric} | " + " | ".join(fmt.format(v) for v in vals) + " |"
            )
        mins = [min(r[m]["sdri"] for r in rs if m in r) for m in methods]
        print(f"| {g} | min sdri | " + " | ".join(f"{v:+.2f}" for v in mins) + " |")
        folds = sorted({r["group"] for r in rs})
        if len(folds) > 1:  # per-fold means of SDRi, and the worst of them
            per = [[np.mean([r[m]["sdri"] for r in rs if r["group"] == f]) for f in folds]
                   for m in methods]  # fmt: skip
            cells = [" ".join(f"{v:+.1f}" for v in p) for p in per]
            print(f"| {g} | per-fold sdri | " + " | ".join(cells) + " |")
            print(f"| {g} | worst fold | " + " | ".join(f"{min(p):+.2f}" for p in per) + " |")
        if "random" in methods:
            above = [sum(r[m]["sdri"] > r["random"]["sdri"] for r in rs) for m in methods]
            print(f"| {g} | > floor | " + " | ".join(f"{a}/{len(rs)}" for a in above) + " |")
        if "factorise_cpu" in rs[0]:
            ks = sorted({r["K"] for r in rs})
            counts = ", ".join(f"K={k}: {sum(r['K'] == k for r in rs)}" for k in ks)
            picks = sorted({r["auto_n"] for r in rs})
            autos = ", ".join(f"{n}: {sum(r['auto_n'] == n for r in rs)}" for n in picks)
            cpu = np.mean([r["factorise_cpu"] for r in rs])
            print(f"| {g} | factorise | {cpu:.2f} s CPU per case; {counts}; auto picks {autos} |")


def main() -> None:
    if sys.argv[1:2] == ["hpss"]:  # its own options: bench/hpss_prior.py
        import hpss_prior

        return hpss_prior.main(sys.argv[2:])
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("what", choices=["cluster", "phase", "continuity"])
    p.add_argument("--per-fold", type=int, default=4)
    p.add_argument("--methods", default="logspec,act,hpss,modulation,mfcc0")
    p.add_argument("--only", default="dev,music,folds")
    p.add_argument("--no-floor", action="store_true")
    p.add_argument("--iters", default="0,1,2,4")
    p.add_argument("--values", default="0,0.1,1", help="continuity: the weights")
    p.add_argument("--source", choices=["wanted", "other"], default=None, help="continuity: on")
    p.add_argument("--json", type=Path, default=None)
    p.add_argument("--factoriser", choices=["mu", "vb"], default="mu", help="cluster's bases")
    p.add_argument(
        "--vb-level", type=float, default=None, help="vb: data level, times nmfsep.bayes.LEVEL"
    )
    p.add_argument("--components", type=int, default=32, help="-k (vb: the nominal K)")
    p.add_argument("--vb-fixed", action="store_true", help="vb with -k bases only (no choice)")
    p.add_argument("--cluster-option", action="append", default=[], help="name=value")
    p.add_argument("--guide-recipe", default=GUIDE_RECIPE, help="guided: the fold models' recipe")
    a = p.parse_args()
    globals()["GUIDE_RECIPE"] = a.guide_recipe
    for item in a.cluster_option:
        k, _, v = item.partition("=")
        CLUSTER_EXTRA[k] = float(v) if "." in v else int(v)
    only = set(a.only.split(","))
    cases = []
    if "dev" in only or "music" in only:
        cases += [
            c for c in dev_cases() if c["group"] in only or ("dev" in only and c["group"] == "dev")
        ]
    if "music" in only:
        cases += music_cases()
    if "folds" in only and a.per_fold > 0:
        cases += fold_cases(a.per_fold)
    if "tune" in only:
        cases += tune_cases(a.per_fold)
    t0 = time.perf_counter()
    if a.what == "cluster":
        rows = run_cluster(
            cases, a.methods.split(","), not a.no_floor, a.factoriser, a.vb_level, a.components,
            a.vb_fixed,
        )  # fmt: skip
        summarise(rows, f"cluster -n 2 ({a.factoriser}), SDRi of the wanted source (dB)")
    elif a.what == "continuity":  # bench/continuity.py
        from continuity import run_continuity

        values = [float(x) for x in a.values.split(",")]
        rows = run_continuity(cases, values, a.source)
        on = "every basis" if a.source is None else f"the {a.source} source's bases"
        summarise(rows, f"separate --continuity λ on {on} (trained per case)")
    else:
        rows = run_phase(cases, [int(x) for x in a.iters.split(",")])
        summarise(rows, "separate --phase-iters N (trained per case)")
    print(f"\n{time.perf_counter() - t0:.0f} s wall")
    if a.json:
        a.json.write_text(json.dumps(rows, indent=1))


def trained_model(c: dict):
    from nmfsep.separation import train_model

    if "mixture" in c:  # a fold mixture: the generalise bench's per-case model (cached)
        import generalise as gen

        return gen.per_case_model(c["corpus"], c["mixture"], True)
    wanted, other = c["train"]
    if isinstance(wanted, Path):
        wanted, other = _read(wanted)[0], _read(other)[0]
    return train_model(
        {"wanted": [wanted[None].astype(np.float32)], "other": [other[None].astype(np.float32)]},
        sr=c["sr"],
        random_state=0,
    )


def run_phase(cases: list[dict], iters: list[int]) -> list[dict]:
    from nmfsep.engine import Separator

    rows = []
    for c in cases:
        model = trained_model(c)
        row: dict = {"case": c["name"], "group": c["group"]}
        for n in iters:
            t0 = time.process_time()
            sep = Separator(model, sr=c["sr"], phase_iters=n)
            a = sep.process(c["mix"].astype(np.float32))
            b = sep.flush()
            cpu = time.process_time() - t0
            est = np.concatenate([a[model.source_names[0]], b[model.source_names[0]]])
            row[f"N={n}"] = {**score(c["ref"], est, c["mix"], c["sr"]), "cpu_s": cpu}
        rows.append(row)
        line = "  ".join(
            f"{k} {v['sdri']:+.2f}/{v['stoi']:.3f} {v['cpu_s']:.2f}s"
            for k, v in row.items()
            if isinstance(v, dict)
        )
        print(f"{c['name'][:34]:34s} {line}", flush=True)
    return rows


if __name__ == "__main__":
    main()
