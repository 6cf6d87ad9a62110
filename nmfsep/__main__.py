"""``python -m nmfsep`` and the ``nmfsep`` command (``[project.scripts]``).

The entry point imports the command line itself, so that Ctrl-C while it loads (numpy, typer and
rich: about a tenth of a second) ends as it does later: ``interrupted`` on stderr, exit 130, the
JSON object with ``--json`` — never a traceback.
"""

from __future__ import annotations

import sys


def main() -> None:
    """Run the command line."""
    try:
        from nmfsep.cli import main as cli_main
    except KeyboardInterrupt:
        _interrupted_while_loading()
    cli_main()


def _interrupted_while_loading() -> None:
    import json

    from nmfsep import __version__

    sys.stderr.write("interrupted\n")
    if any(a == "--json" or a.startswith("--json=") for a in sys.argv[1:]):
        command = next((a for a in sys.argv[1:] if not a.startswith("-")), None)
        payload = {"command": command, "version": __version__, "status": "interrupted",
                   "ok": False, "error": "interrupted", "exit_code": 130}  # fmt: skip
        sys.stdout.write(json.dumps(payload) + "\n")
    sys.exit(130)


if __name__ == "__main__":
    main()
