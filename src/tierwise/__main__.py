"""``python -m tierwise`` runs the command line."""

from tierwise.cli import main

main()
