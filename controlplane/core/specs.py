"""Reading SLO spec files from disk: the one loader the commands, the API and the services use.

The SLO core (``slo``) parses text; finding files in folders and reading them happens here.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from slo.spec import SLO, ParsedSpecs, SpecError, SpecErrors, SpecSource, TierPolicy, parse_specs

__all__ = ["load_spec_paths", "load_specs", "read_spec_sources"]

logger = logging.getLogger(__name__)


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


def load_specs(paths: Sequence[Path], *, tiers: TierPolicy | None = None) -> ParsedSpecs:
    """Read and parse spec files (specs without a tier take the one ``tiers`` gives their
    service); raise :class:`SpecErrors` with every problem found."""
    sources, errors = read_spec_sources(paths)
    try:
        parsed = parse_specs(sources, tiers=tiers)
    except SpecErrors as exc:
        errors.extend(exc.errors)
        parsed = ParsedSpecs(slos=(), notes=())
    if errors:
        raise SpecErrors(sorted(errors, key=lambda e: e.file))  # stable: per-file order kept
    return parsed


def load_spec_paths(paths: Sequence[Path], *, tiers: TierPolicy | None = None) -> tuple[SLO, ...]:
    """:func:`load_specs`' SLOs; the fields not carried over are logged as warnings."""
    parsed = load_specs(paths, tiers=tiers)
    for note in parsed.notes:
        logger.warning("SLO spec field not carried over: %s", note)
    return parsed.slos
