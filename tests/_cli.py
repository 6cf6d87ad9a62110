"""A shared check of the separate command's model-recommendable weight options."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from nmfsep.cli import app


def check_weight_option(src: Path, out: Path, option: str, recommended: float) -> None:
    """``separate --OPTION W``: recorded in the JSON settings when on, absent at 0, the built-in
    model's ``recommended`` value when not given, and a usage error (exit 2) outside 0..1."""
    key = option.removeprefix("--").replace("-", "_")
    runner = CliRunner()
    settings = {}
    for value in ("0.5", "0", None):
        args = ["separate", str(src), "-o", str(out / str(value)), "--json", "-q"]
        r = runner.invoke(app, args + ([] if value is None else [option, value]))
        assert r.exit_code == 0, r.output
        settings[value] = json.loads(r.stdout)["files"][0]["settings"]
    assert settings["0.5"][key] == 0.5
    assert key not in settings["0"]
    assert settings[None][key] == recommended
    r = runner.invoke(app, ["separate", str(src), option, "2", "-o", str(out / "bad")])
    assert r.exit_code == 2
