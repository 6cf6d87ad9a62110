"""The README is true line by line: every ``$ nmfsep ...`` line of its ``console`` blocks runs.

Each command runs in order (later ones use earlier outputs) in a temporary directory holding a
copy of ``sample_audio/``, through the shell (for its pipes and redirections) with ``nmfsep``
replaced by ``sys.executable -m nmfsep``, and must exit 0. A README line that cannot run here
(it names files not in ``sample_audio/``) ends with the comment ``# not run by tests``.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SKIP_MARK = "# not run by tests"
NMFSEP = re.compile(r"(^|[|;&]\s*)nmfsep\b")


def readme_commands() -> list[str]:
    """``$ nmfsep`` command lines of the README's console blocks, ``\\`` continuations joined,
    trailing comments removed."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    commands: list[str] = []
    for block in re.findall(r"```console\n(.*?)```", text, flags=re.S):
        lines = block.splitlines()
        i = 0
        while i < len(lines):
            line = lines[i]
            i += 1
            if not line.startswith("$ "):
                continue
            command = line[2:]
            while command.rstrip().endswith("\\") and i < len(lines):
                command = command.rstrip()[:-1] + " " + lines[i].strip()
                i += 1
            if SKIP_MARK in command or not command.startswith("nmfsep "):
                continue
            commands.append(strip_comment(command))
    return commands


def strip_comment(command: str) -> str:
    """Drop a trailing ``# ...`` comment (outside quotes)."""
    quote = None
    for i, ch in enumerate(command):
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or command[i - 1].isspace()):
            return command[:i].rstrip()
    return command.rstrip()


def test_readme_has_commands() -> None:
    commands = readme_commands()
    assert len(commands) >= 10
    assert not any(c.endswith("\\") or "#" in c for c in commands)


@pytest.mark.slow
def test_every_readme_command_runs(tmp_path: Path) -> None:
    for module, extra in (("matplotlib", "plot"), ("fast_bss_eval", "eval")):
        pytest.importorskip(module, reason=f"the README uses the '{extra}' extra")
    shutil.copytree(ROOT / "sample_audio", tmp_path / "sample_audio")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT), "COLUMNS": "200"}
    python = shlex.quote(sys.executable) + " -m nmfsep"
    for command in readme_commands():
        shell = NMFSEP.sub(lambda m: m.group(1) + python, command)
        r = subprocess.run(
            ["bash", "-c", shell], cwd=tmp_path, env=env, capture_output=True, text=True,
            timeout=300,
        )  # fmt: skip
        assert r.returncode == 0, f"README: $ {command}\n{r.stderr[-2000:]}"


def test_readme_model_size_is_true() -> None:
    """The size the README's first paragraph gives for the built-in model is the shipped file's."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    match = re.search(r"ships inside the package \((\d+\.\d) MB\)", text)
    assert match is not None
    size = (ROOT / "nmfsep" / "data" / "default_model.npz").stat().st_size / 1e6
    assert float(match.group(1)) == pytest.approx(size, abs=0.05)
