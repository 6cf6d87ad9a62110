"""Every default and measured constant of nmfsep, in one place.

Imports nothing (not even numpy), so that the command line can show these defaults in ``--help``
without loading the numerical stack. Each value says where it was measured: ``bench/quality.py``
(the dev cases) and ``bench/generalise.py`` (folds of unseen speakers x unseen noises); the tables
are in ``bench/README.md``.
"""

from __future__ import annotations

# ------------------------------------------------------------------------------ models / training

#: Bases per source (24: -0.14 dB, 48: no gain; bench/README.md "How the defaults were chosen").
COMPONENTS = 32
#: Beta-divergence of training and separation: 1 = Kullback-Leibler (best of 0, 0.5, 1, 2).
BETA = 1.0
#: Training patches kept per source as exemplar bases beside the learned ones (``train
#: --exemplars``; bench/README.md "Exemplar bases").
EXEMPLARS = 0
#: Activation iterations a model with exemplar bases recommends to its separations (with 200
#: exemplars on 40 fold mixtures: 20 -0.10 dB, 30 -0.03 dB; learned bases alone gain nothing
#: from more).
EXEMPLAR_SEPARATE_ITER = 40
#: Frames per basis: each basis is a patch of this many consecutive frames (stacked-frame,
#: "cheap convolutive" NMF; +0.6-0.9 dB over single frames, the largest dev-set gain).
CONTEXT = 5
#: Training iterations (500: +0.03 dB).
TRAIN_ITER = 200
#: Relative tolerance of the NMF stopping rule.
TOL = 1e-4
#: Training frames kept per source at most (a seeded random subset beyond that), with
#: ``TrainOptions.max_frames`` at its default (None): 20 000 frames at 16 kHz with the default
#: window (410 MB of stacked frames), fewer at higher rates (:data:`TRAIN_MEMORY`).
TRAIN_FRAMES = 20_000
#: Bytes of one source's stacked training frames at most with the default ``max_frames``: the
#: frames grow with the rate (5 x 4097 bins at 48 kHz, 5 x 8193 at 96 kHz), and training holds
#: about six arrays of their size: 14 000 frames of 48 kHz audio took 6.5 GB (bench/README.md,
#: "Training memory"). This keeps 13 100 frames (5 min of audio) at 44.1 kHz, 6552 (4.7 min) at
#: 48 kHz and 3276 (2.3 min) at 96 kHz; up to 22.05 kHz nothing changes.
TRAIN_MEMORY = 512 << 20
#: The fewest frames that budget may leave (at 192 kHz and above, or with a huge ``n_fft``).
TRAIN_FRAMES_MIN = 2000
#: Training frames quieter than this many dB below the loudest frame are not used: they carry no
#: spectral shape, only cost.
SILENCE_DB = 60.0
#: Audio read per source for training at most (seconds): a longer set is read as the same share
#: of each file, so reading memory stays bounded.
TRAIN_SECONDS = 1800.0
#: Discriminative training (``train --discriminative``, issue 12): synthetic mixtures of the
#: training clips (frames in all, a seeded sample), SNR of the first source against the others
#: drawn uniformly in this range (dB), and multiplicative-update iterations of the
#: reconstruction bases (the best on held-out mixtures is kept).
DISCRIMINATIVE_FRAMES = 4000
DISCRIMINATIVE_SNR = (-5.0, 10.0)
DISCRIMINATIVE_ITER = 20
#: Frames per synthetic mixture (random offsets in the clips).
DISCRIMINATIVE_SEGMENT = 40
#: Beta-divergence between each source's spectrum and its masked mixture (the objective).
DISCRIMINATIVE_BETA = 1.0

# ------------------------------------------------------------------------------ STFT

#: Analysis window of trained models (seconds; a power of two in samples, 75 % overlap):
#: 128 ms = n_fft 2048 at 16 kHz, 4096 at 44.1 kHz (+0.23 dB over 64 ms).
WINDOW_SECONDS = 0.128
#: Window of ``cluster``: the bases are learned on the (short) mixture itself, and more frames
#: make a better factorisation (64 ms: 10.5 dB on the speech cases, 128 ms: 8.0 dB).
CLUSTER_WINDOW_SECONDS = 0.064

# ------------------------------------------------------------------------------ separation

#: Wiener mask exponent p in ``M_i = P_i^p / sum_j P_j^p`` (1.5: -0.5 dB, 3: -0.2 dB).
MASK_POWER = 2.0
#: Activation iterations per block when separating (10-50 all within 0.1 dB; 20 = margin).
#: A model may recommend its own (the built-in model: 7, with free bases on every bin).
SEPARATE_ITER = 20
#: L1 penalty on activations for supervised separation, each frame at unit mean level
#: (+0.2-0.3 dB). With free bases (semi-supervised) the default is 0: there the penalty pushes
#: speech into the free bases (-2.4 dB).
SEPARATE_L1 = 2.0
SEMI_SUPERVISED_L1 = 0.0
#: Bands the activations are inferred on (ERB-spaced, full resolution at low frequencies);
#: 0 = every bin. 256: 4x fewer flops for -0.05 to -0.08 dB
#: on the dev cases with trained models (bench/README.md, "Compressed analysis"). The built-in
#: model recommends every bin: its free bases learned on the bands take an unseen voice (folds
#: +0.2 dB, dev +2.6 dB on every bin).
ANALYSIS_BANDS: int = 256
#: MISI phase-reconstruction iterations per block (nmfsep.phase); 0 = the mixture's phase.
#: Measured in bench/README.md "Quality methods (issue 12)".
PHASE_ITERS = 0
#: Temporal-continuity penalty on the activations (Virtanen 2007, nmfsep.nmf ``continuity``);
#: 0 = off. Measured in bench/README.md "Quality methods (issue 12)", "Temporal continuity".
CONTINUITY = 0.0
#: Name of the source that free bases (semi-supervised separation) are written as.
RESIDUAL = "residual"

# ------------------------------------------------------------------------------ cluster

#: Sources ``cluster`` looks for.
CLUSTER_SOURCES = 2
#: Basis features of the k-means step (see nmfsep.clustering): the normalised log-spectrum was
#: best or tied on the speech cases; MFCCs tie on two of three; activations did not help.
CLUSTER_FEATURE_KINDS = (
    "logspec",
    "mfcc",
    "logspec+act",
    "mfcc+act",
    # issue 12 (bench/README.md "Quality methods (issue 12)"): all below logspec on the speech
    # folds; mfcc0 best on the music dev case
    "act",
    "hpss",
    "modulation",
    "mfcc0",
    "logspec+mod",
    "logspec+hpss",
    # the mfcc0 or the modulation partition, whichever has the less correlated source
    # envelopes: folds SDRi 4.36 vs 3.92 dB but STOI 0.703 vs 0.718; music above the random
    # floor 4/5 vs 3/5 (not the default: STOI must not drop where SDR rises)
    "mfcc0-or-mod",
    # speech against the rest by the built-in model's speech share of each basis's part: on 40
    # fold mixtures SDRi 5.25 vs 2.63 dB, SI-SDRi 3.70 vs 1.38, STOI 0.707 vs 0.709; worse on
    # music (it is a speech model), so the default uses it only through "auto"
    "guided",
    # guided when the built-in model hears speech, else mfcc0-or-mod (CLUSTER_AUTO_SPEECH_SHARE)
    "auto",
)
#: ``features="auto"``: the guide's speech power share of the sampled frames at or above which
#: the grouping is ``guided`` (else ``mfcc0-or-mod``). Chosen on a tuning set of its own
#: (``bench/methods.py cluster --only tune``: 40 speech mixtures from the training parts of the
#: folds' test recordings, 12 pairs of other corpus stems): the mean of the two sets' SDRi is
#: 7.06 dB at 0.18, 7.01-7.04 at 0.15 and 0.2, 6.84 at 0.25, 6.03 at 0.1; the speech mixtures'
#: shares run 0.19-0.96, the stems' 0.03-0.43 (9 of 12 below 0.13).
CLUSTER_AUTO_SPEECH_SHARE = 0.18
#: ``--sources auto`` tries this many sources (silhouette of the bases' features).
CLUSTER_AUTO_SOURCES = (2, 3, 4)
#: auto since session 16 (bench/README.md, "`--features auto`"): ``guided`` when the built-in
#: model hears speech, else ``mfcc0-or-mod``. Held-out cases of ``bench/methods.py cluster``
#: against mfcc0 (the default before): 40 fold mixtures SDRi 5.50 vs 2.63 dB, SI-SDRi 4.05 vs
#: 1.38, STOI 0.729 vs 0.709, worst fold +3.05 vs +0.57; five music mixes 4.96 vs 2.54 dB, above
#: the random floor on 4 vs 3; dev speech 9.86 vs 9.87 dB (SI-SDRi 6.06 vs 7.09). It costs one
#: pass of the built-in model over the file. mfcc0 (MFCCs with c0 kept) was chosen in issue 12
#: over logspec: 20 fold mixtures SDRi 3.92 vs 3.79 dB, music dev case 14.5 vs 0.3 dB.
CLUSTER_FEATURES = "auto"
#: Frames of the mixture ``cluster`` learns its bases on at most: a seeded sample spread over
#: the whole file, so memory does not grow with the file's length (20 000 frames = 10.7 min of
#: audio at the 64 ms / 16 ms cluster window; shorter files use every frame).
CLUSTER_FRAMES = 20_000
#: Iterations of the activations once the clustered bases are fixed (the separation pass).
CLUSTER_SEPARATE_ITER = 50
#: ``separate --cluster-blend`` (nmfsep.blend): bases learned on each block, on about this many
#: ERB bands (one factorisation per entry, their masks averaged), with this many iterations and
#: this Wiener power for their estimate. Measured on the held-out folds (bench/README.md,
#: "Cluster blend"): 128 bands scored as every bin did (bases-only fold models, 80 mixtures:
#: 6.49 vs 6.44 dB) for a fraction of the CPU; three resolutions of 20 iterations each beat one
#: of 40 (6.65 vs 6.47 dB with W 0.4 / 0.3) for less CPU.
CLUSTER_BLEND_COMPONENTS = 32
CLUSTER_BLEND_BANDS: tuple[int, ...] = (128, 64, 32)
CLUSTER_BLEND_ITER = 20
CLUSTER_BLEND_MASK_POWER = 1.5
#: How ``cluster`` learns its bases: multiplicative updates with ``-k`` bases ("mu"), or
#: variational Bayes choosing their number by the bound ("vb", nmfsep.bayes; Cemgil 2009,
#: Yang, Hsu & Chien 2014). "mu" stays the default: see bench/README.md, "Variational Bayesian
#: NMF".
CLUSTER_FACTORISERS = ("mu", "vb")
CLUSTER_FACTORISER = "mu"

# ------------------------------------------------------------------------------ streaming

#: Bytes of complex mixture STFT per block the automatic block size aims at; the working set of
#: a block is about 8x that.
BLOCK_STFT_BYTES = 24 * 1024 * 1024
#: Bounds of the automatic block duration (seconds): 44.1 kHz stereo gets about 23 s, 16 kHz
#: mono 60 s.
MIN_BLOCK_SECONDS = 10.0
MAX_BLOCK_SECONDS = 60.0

# ------------------------------------------------------------------------------ level policy

#: Peak amplitudes outside this range are brought into it (by a power of two, exactly
#: reversible) before the STFT: float32 spectra of louder float files overflow, those of quieter
#: ones sink into the epsilon floor. Separation is scale-invariant, so nothing else changes.
SAFE_PEAK = (2.0**-20, 2.0**13)

# ------------------------------------------------------------------------------ files

#: Output file-name template under OUTDIR.
TEMPLATE = "{track}/{source}.{ext}"
#: Output directory.
OUTDIR = "separated"
#: Output format.
FORMAT = "wav"
#: Random seed.
SEED = 0

# ------------------------------------------------------------------------------ tracked gain

#: ``gain="tracked"`` (nmfsep.tracking): smoothing of the periodograms (49 ms: alpha 0.85 at an
#: 8 ms hop, the textbook value), the minimum-statistics window (1.5 s, Martin 2001), the time
#: constant of the decision-directed a-priori SNR (0.4 s: alpha 0.98 at 8 ms, Ephraim & Malah
#: 1984), its floor (-15 dB), and the blend of the NMF and the tracker's noise estimates: half
#: and half at an estimated 3.5 dB SNR, all NMF at -1.5 dB and all tracker at 8.5 dB. Chosen
#: on the held-out folds of bench/generalise.py (bench/hybrid.py and generalise_sweep.py;
#: midpoint 3.5 vs 5 dB on all 80 mixtures, 3 free bases: 5.62 vs 5.59 dB SDRi with a
#: 64-basis noise bank, 5.30 vs 5.32 with a 32-basis one; SI-SDRi +0.08 in both; the shipped
#: 64-basis bank with 2 free bases at 3.5 dB: 5.59 / 3.99 / STOI 0.796; bench/README.md).
TRACK_SMOOTH_SECONDS = 0.049
TRACK_WINDOW_SECONDS = 1.5
TRACK_DD_SECONDS = 0.396
TRACK_XI_MIN_DB = -15.0
TRACK_BLEND_MID_DB = 3.5
TRACK_BLEND_WIDTH_DB = 10.0
#: How the NMF and tracker noise estimates are weighed: "local" (per bin, by the NMF masks'
#: local SNR, times the block's weight): 5.49 dB / STOI 0.797 vs "block" 5.38 / 0.796 with 3
#: free bases (40 fold mixtures).
TRACK_BLEND = "local"
#: Weight of the NMF mask in the gain (geometric; 0: the decision-directed gain alone). 0.25:
#: 5.29 dB / STOI 0.796 on the 40 fold mixtures, vs 5.15 / 0.791 at 0 and 5.16 / 0.797 at 0.5.
TRACK_MASK_WEIGHT = 0.25
# ------------------------------------------------------------------------ stationary expert

#: ``stationary_blend`` (nmfsep.stationary): the expert's frames (32 ms: 512 samples at 16 kHz,
#: the textbook filter's; its time constants are the tracked gain's), and its gate: the full
#: weight where the mixture's minimum-statistics noise power is at least the power the
#: separation removed (0 dB), none at -5 dB and below (measured on the held-out folds of
#: bench/generalise.py with bench/stationary.py, re-tuned in session 15 with the built-in
#: model's frame balance; bench/README.md, "Stationary expert").
STATIONARY_FRAME_SECONDS = 0.032
STATIONARY_FULL_DB = 0.0
STATIONARY_WIDTH_DB = 5.0

#: The gain of the first source: "wiener" (the NMF masks) or "tracked" (nmfsep.tracking).
GAIN = "wiener"
GAINS = ("wiener", "tracked")

# --------------------------------------------------------------------------- learned refiner

#: ``refine`` recommended by a model trained with ``refiner="speech"`` (``train --refiner``): the
#: weight of the shipped trained-path refiner. On the 80 held-out fold mixtures of
#: bench/generalise.py (per-case models; bench/supervised_refiner.py) 0.3 / 0.5 / 0.7 gave
#: SDRi 10.32 / 10.30 / 10.11 dB, SI-SDRi 8.71 / 8.81 / 8.80, STOI 0.844 / 0.847 / 0.846,
#: against 10.12 / 8.41 / 0.835 without; 0.5 for the SI-SDR and STOI at the same SDR.
TRAINED_REFINE = 0.5
#: ``train``'s default ``refiner``: "auto" attaches the trained-path refiner to the one source
#: whose name has one of these words (split at anything but letters and digits: ``speech``,
#: ``train_speech``, ``Voice-1``), when the model has two sources or more; on the held-out folds
#: it is better on every fold in SDR, SI-SDR and STOI (above). "none" / None: never.
REFINER_AUTO = "auto"
REFINER_SPEECH_WORDS = ("speech", "voice")
