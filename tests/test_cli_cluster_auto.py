"""``nmfsep cluster --factoriser vb`` and ``--n-sources auto`` on the command line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from _signals import SR, hiss, tones
from typer.testing import CliRunner

from nmfsep.cli import app

runner = CliRunner()


def _mix(tmp_path: Path, name: str = "mix", seed: int = 0) -> tuple[Path, np.ndarray]:
    y = tones(2.0, seed=seed) + hiss(2.0, seed=seed + 1)
    path = tmp_path / f"{name}.wav"
    sf.write(path, y, SR, subtype="FLOAT")
    return path, y


def _written(out: Path) -> set[str]:
    return {str(p.relative_to(out)) for p in out.rglob("*.wav")}


def test_factoriser_vb_writes_sources_and_reports_the_bound(tmp_path: Path) -> None:
    src, y = _mix(tmp_path)
    out = tmp_path / "out"
    args = ["cluster", str(src), "-k", "8", "--factoriser", "vb", "--max-iter", "60"]
    r = runner.invoke(app, [*args, "-o", str(out), "--json", "-q"])
    assert r.exit_code == 0, r.output
    entry = json.loads(r.stdout)["files"][0]
    settings = entry["settings"]
    assert settings["factoriser"] == "vb"
    assert set(settings["vb_bounds"]) == {"2", "4", "6", "8", "12"}
    best = max(settings["vb_bounds"], key=settings["vb_bounds"].get)
    assert settings["n_components"] == int(best)
    total = sum(sf.read(out / "mix" / f"source{i}.wav")[0] for i in (1, 2))
    np.testing.assert_allclose(total, y, atol=1e-4)


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        (["--factoriser", "ard"], "--factoriser must be one of mu, vb"),
        (["--factoriser", "vb", "--beta", "is"], "needs beta 1"),
        (["-n", "zero"], "--n-sources must be a number from 1 to 64 or 'auto'"),
        (["-n", "0"], "--n-sources must be a number from 1 to 64 or 'auto'"),
        (["-n", "65"], "--n-sources must be a number from 1 to 64 or 'auto', got '65'"),
        (["-n", "auto", "--sources", "source5"], "--sources: no source 'source5'"),
    ],
)
def test_bad_values_are_usage_errors(tmp_path: Path, args: list[str], flag: str) -> None:
    src, _ = _mix(tmp_path)
    r = runner.invoke(app, ["cluster", str(src), *args, "-o", str(tmp_path / "out")])
    assert r.exit_code == 2, r.output
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and flag in lines[0], r.stderr
    assert not (tmp_path / "out").exists()


def test_auto_sources_in_a_batch(tmp_path: Path) -> None:
    a, _ = _mix(tmp_path, "a", 0)
    b, _ = _mix(tmp_path, "b", 2)
    out = tmp_path / "out"
    args = ["cluster", str(a), str(b), "-n", "auto", "-k", "8", "--max-iter", "60"]
    r = runner.invoke(app, [*args, "-o", str(out), "--json", "-q", "-j", "1"])
    assert r.exit_code == 0, r.output
    files = json.loads(r.stdout)["files"]
    expected = set()
    for entry in files:
        n = entry["settings"]["n_sources"]
        assert entry["settings"]["n_sources_auto"] is True and 2 <= n <= 4
        track = Path(entry["input"]).stem
        assert list(entry["outputs"]) == [f"source{i + 1}" for i in range(n)]
        expected |= {f"{track}/source{i + 1}.wav" for i in range(n)}
    assert _written(out) == expected
    assert not list(out.rglob("*.nmfsep-*")) and not list(out.rglob(".*"))
    # a re-run finds them done (any output of an input: they are renamed in all together)
    again = runner.invoke(app, [*args, "-o", str(out), "--json", "-q"])
    assert [f["status"] for f in json.loads(again.stdout)["files"]] == ["skipped", "skipped"]
    # --overwrite redoes them; a planned output beyond the count found (an earlier run's)
    # is removed, so each track holds one run's sources
    n_a = files[0]["settings"]["n_sources"]
    if n_a < 4:
        stale = out / "a" / "source4.wav"
        sf.write(stale, np.zeros(10), SR)
        redo = runner.invoke(app, [*args, "-o", str(out), "--overwrite", "-q", "-j", "1"])
        assert redo.exit_code == 0, redo.output
        assert not stale.exists() and _written(out) == expected


def test_auto_sources_to_stdout_beyond_the_count_found(tmp_path: Path) -> None:
    src, _ = _mix(tmp_path)
    r = runner.invoke(app, ["cluster", str(src), "-n", "auto", "-k", "8", "--stdout", "source4"])
    # the tones and the hiss: two (or three) sources, never four on 8 bases of this mix
    assert r.exit_code == 1
    assert "no source source4: n_sources 'auto' found" in r.stderr


def test_auto_sources_none_of_the_requested_found(tmp_path: Path) -> None:
    """--sources naming only sources beyond the count found: that input fails with one line
    (nothing written, nothing left behind), instead of an "ok" with no output."""
    src, _ = _mix(tmp_path)
    out = tmp_path / "out"
    args = ["cluster", str(src), "-n", "auto", "-k", "8", "--sources", "source4", "-o", str(out)]
    r = runner.invoke(app, [*args, "--json", "-q"])
    assert r.exit_code == 1, r.output
    entry = json.loads(r.stdout)["files"][0]
    assert entry["status"] == "error" and "no source source4" in entry["error"]
    assert not out.exists() or (_written(out) == set() and not list(out.rglob(".*")))
