"""Reading SLO spec files from disk: the one loader the commands, the API and the services use.

The SLO core (``slo``) parses text; finding files in folders and reading them happens here.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from slo.spec import SLO, SpecError, SpecErrors, SpecSource, parse_slos

__all__ = ["load_spec_paths", "read_spec_sources"]


def read_spec_sources(paths: Sequence[Path]) -> tuple[list[SpecSource], list[SpecError]]:
    """Read spec files; folders are searched recursively for ``*.yaml`` and ``*.yml``.

    Returns the sources in a stable order and one error per path that cannot be read.
    """
    sources: list[SpecSource] = []
    errors: list[SpecError] = []
    for path in paths:
        if path.is_dir():
            found = sorted(
                p for p in path.rglob("*") if p.is_file() and p.suffix in (".yaml", ".yml")
            )
            if not found:
                errors.append(
                    SpecError(file=str(path), field="(folder)", message="no .yaml or .yml files")
                )
            files = found
        else:
            files = [path]
        for file in files:
            try:
                text = file.read_text(encoding="utf-8")
            except FileNotFoundError:
                errors.append(
                    SpecError(file=str(file), field="(file)", message="no such file or directory")
                )
            except (OSError, UnicodeDecodeError) as exc:
                message = " ".join(str(exc).split())
                errors.append(
                    SpecError(file=str(file), field="(file)", message=f"cannot read: {message}")
                )
            else:
                sources.append(SpecSource(name=str(file), text=text))
    return sources, errors


def load_spec_paths(paths: Sequence[Path]) -> tuple[SLO, ...]:
    """Read and parse spec files; raise :class:`SpecErrors` with every problem found."""
    sources, errors = read_spec_sources(paths)
    try:
        slos = parse_slos(sources)
    except SpecErrors as exc:
        errors.extend(exc.errors)
        slos = ()
    if errors:
        raise SpecErrors(sorted(errors, key=lambda e: e.file))  # stable: per-file order kept
    return slos
