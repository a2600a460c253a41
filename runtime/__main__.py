"""``python -m runtime``: the same as the ``runtime`` command."""

from runtime.cli import main

main(prog_name="runtime")
