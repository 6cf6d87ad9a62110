"""``python -m nmfsep`` runs the command-line tool."""

from nmfsep.cli import main

main()
