"""Sub-commands of the ``controlplane`` command line, one Typer application per module."""
