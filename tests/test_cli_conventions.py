"""Command-line conventions and the perceptual metrics of ``evaluate``, through subprocesses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
AUDIO = ROOT / "sample_audio"
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT), "COLUMNS": "200"}


def nmfsep(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "nmfsep", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=ENV,
        timeout=300,
    )


@pytest.fixture(scope="module")
def separated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sep")
    r = nmfsep("separate", str(AUDIO / "mix.wav"), "-o", str(out), "-q")
    assert r.returncode == 0, r.stderr
    return out / "mix"


def test_evaluate_perceptual_metrics_json(separated: Path) -> None:
    pytest.importorskip("pystoi")
    pytest.importorskip("pesq")
    r = nmfsep(
        "evaluate", str(separated / "speech.wav"), "--reference", str(AUDIO / "speech.wav"),
        "--metrics", "si-sdr,stoi,estoi,pesq", "--json",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    row = json.loads(r.stdout)["sources"][0]
    assert 0.0 < row["stoi"] <= 1.0 and 0.0 < row["estoi"] <= 1.0
    assert 1.0 <= row["pesq"] <= 4.6
    assert "sdr" not in row  # BSS-eval not asked for


@pytest.mark.parametrize("n", [100, 4000])
def test_evaluate_stoi_of_a_clip_too_short_is_null_with_a_warning(n: int, tmp_path: Path) -> None:
    """pystoi raised on 100 samples and gave its 1e-5 placeholder on 0.25 s, even for an
    estimate equal to its reference: neither is a score."""
    pytest.importorskip("pystoi")
    clip = tmp_path / "clip.wav"
    sf.write(clip, 0.1 * np.random.default_rng(1).standard_normal(n), 16000)
    r = nmfsep("evaluate", str(clip), "--reference", str(clip), "--metrics", "stoi,estoi",
               "--json")  # fmt: skip
    assert r.returncode == 0, r.stderr
    row = json.loads(r.stdout)["sources"][0]
    assert row["stoi"] is None and row["estoi"] is None
    assert (
        r.stderr == f"warning: {clip}: no STOI or ESTOI score (STOI needs about 0.4 s of speech)\n"
    )


def test_evaluate_table_shows_only_the_asked_metrics(separated: Path) -> None:
    pytest.importorskip("pystoi")
    r = nmfsep(
        "evaluate", str(separated / "speech.wav"), "--reference", str(AUDIO / "speech.wav"),
        "--metrics", "stoi",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "STOI" in r.stdout and "SDR" not in r.stdout.replace("SDR/SIR/SAR", "")


def test_evaluate_a_perfect_estimate_says_inf() -> None:
    """An estimate equal to its reference scores +inf dB: the table and CSV say so, JSON (which
    has no infinity) gives null; the columns are not dropped as if nothing was measured."""
    ref = str(AUDIO / "speech.wav")
    r = nmfsep("evaluate", ref, "--reference", ref, "--metrics", "si-sdr")
    assert r.returncode == 0, r.stderr
    assert "SI-SDR" in r.stdout and "inf" in r.stdout
    r = nmfsep("evaluate", ref, "--reference", ref, "--metrics", "si-sdr", "--csv")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[1].endswith(",inf")
    r = nmfsep("evaluate", ref, "--reference", ref, "--metrics", "si-sdr", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["sources"][0]["si_sdr"] is None


def test_evaluate_bad_metric_is_usage_error(separated: Path) -> None:
    r = nmfsep("evaluate", str(separated / "speech.wav"), "--reference",
               str(AUDIO / "speech.wav"), "--metrics", "mos")  # fmt: skip
    assert r.returncode == 2 and "--metrics" in r.stderr


def test_evaluate_reference_has_no_r_short_flag(separated: Path) -> None:
    r = nmfsep("evaluate", str(separated / "speech.wav"), "-r", str(AUDIO / "speech.wav"))
    assert r.returncode == 2


def test_evaluate_warns_when_lengths_differ(separated: Path, tmp_path: Path) -> None:
    y, sr = sf.read(separated / "speech.wav", dtype="float32")
    short = tmp_path / "speech.wav"
    sf.write(short, y[: int(0.9 * y.size)], sr)
    r = nmfsep("evaluate", str(short), "--reference", str(AUDIO / "speech.wav"),
               "--metrics", "si-sdr")  # fmt: skip
    assert r.returncode == 0, r.stderr
    warnings = [line for line in r.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "1 %" in warnings[0]


def test_evaluate_warns_when_channel_counts_differ(separated: Path, tmp_path: Path) -> None:
    y, sr = sf.read(separated / "speech.wav", dtype="float32")
    stereo = tmp_path / "speech.wav"
    sf.write(stereo, np.stack([y, y], axis=1), sr)
    r = nmfsep("evaluate", str(stereo), "--reference", str(AUDIO / "speech.wav"),
               "--metrics", "si-sdr", "--json")  # fmt: skip
    assert r.returncode == 0, r.stderr
    warnings = [line for line in r.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "1 and 2 channels" in warnings[0], r.stderr
    # scored on the channel mean, which here is the mono estimate itself
    mono = nmfsep("evaluate", str(separated / "speech.wav"), "--reference",
                  str(AUDIO / "speech.wav"), "--metrics", "si-sdr", "--json")  # fmt: skip
    si = [json.loads(x.stdout)["sources"][0]["si_sdr"] for x in (r, mono)]
    assert si[0] == pytest.approx(si[1], abs=1e-3)


def test_atten_lim_floors_the_first_source(tmp_path: Path) -> None:
    mix, _ = sf.read(AUDIO / "mix.wav", dtype="float32")
    r = nmfsep("separate", str(AUDIO / "mix.wav"), "-o", str(tmp_path), "--atten-lim", "6",
               "--float32", "-q")  # fmt: skip
    assert r.returncode == 0, r.stderr
    speech, _ = sf.read(tmp_path / "mix" / "speech.wav", dtype="float32")
    noise, _ = sf.read(tmp_path / "mix" / "noise.wav", dtype="float32")
    np.testing.assert_allclose(speech + noise, mix, atol=1e-4)
    # at most 6 dB taken away anywhere: the speech output keeps at least half the mixture's
    # energy in every STFT cell (up to the ISTFT's smoothing), so overall well over a quarter
    assert np.sum(speech**2) > 0.25 * np.sum(mix**2)


def test_every_default_is_shown_in_help() -> None:
    r = nmfsep("separate", "--help")
    assert r.returncode == 0
    text = " ".join(r.stdout.split())
    for needle in ("default stdin", "[default: separated]", "[default: wav]"):
        assert needle in text, needle


def test_help_shows_the_defaults_table_and_one_example_per_line() -> None:
    from nmfsep import defaults

    wanted = {
        "train": [
            f"Bases per source (default {defaults.COMPONENTS})",
            f"(default {defaults.BETA:g}, kl)",
            f"~{defaults.WINDOW_SECONDS * 1000:.0f} ms",
            f"(default {defaults.CONTEXT})",
            f"(default {defaults.TRAIN_ITER})",
            "[default: 0.0001]",
            "[default: 0]",
        ],
        "separate": [
            f"recommendation, else {defaults.SEPARATE_ITER})",
            f"(default {defaults.SEPARATE_L1:g};",
            f"(default {defaults.MASK_POWER:g},",
            "(default: the model's)",
        ],
        "cluster": [
            f"mix (default {defaults.COMPONENTS})",
            f"(default {defaults.CLUSTER_FEATURES};",
            "[default: 2]",
        ],
        "evaluate": [],
        "info": [],
    }
    for command, needles in wanted.items():
        r = nmfsep(command, "--help")
        assert r.returncode == 0, command
        text = " ".join(r.stdout.split())
        for needle in needles:
            assert needle in text, (command, needle)
        examples = r.stdout[r.stdout.index("Examples:") :].splitlines()[1:]
        examples = [line.strip() for line in examples if line.strip()]
        assert len(examples) >= 2, command
        for line in examples:
            assert "nmfsep " in line and line.count("nmfsep ") == 1, (command, line)
            assert " | nmfsep" not in line or line.startswith("find "), (command, line)


@pytest.mark.parametrize("scale", ["log", "linear", "mel"])
def test_plot_scales(tmp_path: Path, scale: str) -> None:
    pytest.importorskip("matplotlib")
    r = nmfsep("info", "default", "--plot", str(tmp_path / "bases.png"), "--plot-scale", scale)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "bases.png").read_bytes()[:4] == b"\x89PNG"


def test_bad_plot_scale_is_a_usage_error(tmp_path: Path) -> None:
    r = nmfsep("separate", str(AUDIO / "mix.wav"), "--plot", "--plot-scale", "bark",
               "-o", str(tmp_path))  # fmt: skip
    assert r.returncode == 2 and "--plot-scale" in r.stderr


def test_evaluate_without_reference_gives_dnsmos(tmp_path: Path) -> None:
    """``evaluate --no-reference``: DNSMOS from the offline models of the 'mos' extra."""
    import importlib.util

    rng = np.random.default_rng(0)
    t = np.arange(3 * 16000) / 16000
    voiced = 0.2 * np.sin(2 * np.pi * 150 * t) * (0.5 + 0.5 * np.sin(2 * np.pi * 3 * t))
    sf.write(tmp_path / "a.wav", voiced + 0.01 * rng.standard_normal(t.size), 16000)
    sf.write(tmp_path / "short.wav", voiced[:4000], 16000)
    sf.write(tmp_path / "silent.wav", np.zeros(t.size), 16000)
    cmd = [sys.executable, "-m", "nmfsep", "evaluate", "--no-reference", "--json"]
    result = subprocess.run(
        [*cmd, *(str(tmp_path / f"{n}.wav") for n in ("a", "short", "silent"))],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    have = all(importlib.util.find_spec(m) for m in ("speechmos", "onnxruntime"))
    if not have:
        assert result.returncode == 2 and "'mos' extra" in result.stderr
        return
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)["files"]
    assert 1.0 <= rows[0]["ovrl_mos"] <= 5.0 and 1.0 <= rows[0]["sig_mos"] <= 5.0
    assert rows[1]["ovrl_mos"] is None  # under one second: no score, and a line saying so
    assert rows[2]["ovrl_mos"] is None  # silence: the models would score it as a recording
    assert result.stderr == (
        f"warning: {tmp_path / 'short.wav'}: shorter than 1 s: no DNSMOS score\n"
        f"warning: {tmp_path / 'silent.wav'}: silent: no DNSMOS score\n"
    )


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["train", "speech=x.wav", "-k", "0"], "'--components' / '-k'"),
        (["separate", "x.wav", "--jobs", "0"], "'--jobs' / '-j'"),
        (["separate", "x.wav", "--no-such-option"], "No such option: --no-such-option"),
        (["separate", "x.wav", "--channels"], "'--channels' requires an argument"),
        (["no-such-command"], "No such command 'no-such-command'"),
    ],
)
def test_parser_errors_are_one_line(args: list[str], needle: str, tmp_path: Path) -> None:
    """Errors the option parser finds itself (a value out of an option's range, an unknown
    option or command) are one ``error:`` line and exit 2, like every other usage error: not a
    framed panel of several lines."""
    r = nmfsep(*args, cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    assert r.stderr.startswith("error: ") and r.stderr.count("\n") == 1, r.stderr
    assert needle in r.stderr and r.stdout == ""
    assert list(tmp_path.iterdir()) == []


def test_evaluate_says_what_it_cannot_score(separated: Path, tmp_path: Path) -> None:
    """A silent reference is a warning line (the scores are undefined, not missing by
    accident); an empty reference directory and --json with --csv are errors."""
    silent = tmp_path / "silent.wav"
    est = str(separated / "speech.wav")
    sf.write(silent, np.zeros(sf.info(est).frames, np.float32), sf.info(est).samplerate)
    r = nmfsep("evaluate", est, "--reference", str(silent), "--metrics", "si-sdr")
    assert r.returncode == 0, r.stderr
    assert (
        r.stderr
        == f"warning: {silent}: the reference is silent: SDR and SI-SDR are undefined against it\n"
    )
    empty = tmp_path / "refs"
    empty.mkdir()
    r = nmfsep("evaluate", est, "--reference-dir", str(empty))
    assert (
        r.returncode == 1
        and r.stderr == f"error: {empty}: no audio files in the reference directory\n"
    )
    r = nmfsep("evaluate", est, "--reference", str(silent), "--json", "--csv")
    assert r.returncode == 2 and "--json and --csv" in r.stderr
