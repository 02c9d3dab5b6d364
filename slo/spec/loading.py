"""Loading: YAML documents to input models by ``apiVersion`` and ``kind``, references
resolved across files, and :func:`parse_slos`."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TypeVar

import yaml
from pydantic import ValidationError

from slo.spec.errors import (
    SpecError,
    SpecErrors,
    _FieldProblem,
    _validate,
    _validation_errors,
    _Where,
)
from slo.spec.model import SLO
from slo.spec.native import NATIVE_API_VERSION, _native_to_slo, _NativeDocument
from slo.spec.openslo import (
    OPENSLO_API_VERSION,
    _OAlertPolicyDocument,
    _openslo_to_slos,
    _OServiceDocument,
    _OSLIDocument,
    _OSLODocument,
    _Registry,
)
from slo.spec.validators import _Input


@dataclass(frozen=True, kw_only=True)
class SpecSource:
    """The text of one spec file and the name to report it by (usually its path)."""

    name: str
    text: str


_OPENSLO_KINDS: dict[str, type[_Input]] = {
    "SLO": _OSLODocument,
    "SLI": _OSLIDocument,
    "Service": _OServiceDocument,
    "AlertPolicy": _OAlertPolicyDocument,
}
_NATIVE_KINDS: dict[str, type[_Input]] = {"SLO": _NativeDocument}


@dataclass(frozen=True, kw_only=True)
class _Parsed:
    where: _Where
    model: _Input


#: libyaml's safe loader when PyYAML was built with it (about ten times faster on a thousand
#: specs), else the pure-Python one; both build the same plain values.
_SAFE_LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _yaml_documents(source: SpecSource) -> list[tuple[_Where, object]]:
    try:
        documents = [d for d in yaml.load_all(source.text, Loader=_SAFE_LOADER) if d is not None]
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        field = "(yaml)" if mark is None else f"line {mark.line + 1}, column {mark.column + 1}"
        problem = getattr(exc, "problem", None) or str(exc)
        raise SpecErrors(
            [SpecError(file=source.name, field=field, message=f"invalid YAML: {problem}")]
        ) from exc
    if not documents:
        raise SpecErrors([SpecError(file=source.name, field="(file)", message="no documents")])
    multi = len(documents) > 1
    return [
        (_Where(file=source.name, document=i + 1 if multi else None), doc)
        for i, doc in enumerate(documents)
    ]


def _parse_document(where: _Where, data: object) -> _Parsed:
    if not isinstance(data, dict):
        raise SpecErrors([where.error("(document)", "expected a mapping with apiVersion and kind")])
    api_version = data.get("apiVersion")
    kind = data.get("kind")
    if api_version is None:
        raise SpecErrors([where.error("apiVersion", "required field is missing")])
    if api_version == OPENSLO_API_VERSION:
        kinds, openslo = _OPENSLO_KINDS, True
    elif api_version == NATIVE_API_VERSION:
        kinds, openslo = _NATIVE_KINDS, False
    else:
        raise SpecErrors(
            [
                where.error(
                    "apiVersion",
                    f"unknown apiVersion {api_version!r}: expected {OPENSLO_API_VERSION} "
                    f"or {NATIVE_API_VERSION}",
                )
            ]
        )
    if kind is None:
        raise SpecErrors([where.error("kind", "required field is missing")])
    if not isinstance(kind, str) or kind not in kinds:
        expected = ", ".join(kinds)
        raise SpecErrors(
            [where.error("kind", f"unknown kind {kind!r} for {api_version}: expected {expected}")]
        )
    return _Parsed(where=where, model=_validate(kinds[kind], data, where=where, openslo=openslo))


_D = TypeVar("_D", _OSLIDocument, _OServiceDocument, _OAlertPolicyDocument)


def _add(
    table: dict[str, tuple[_Where, _D]],
    *,
    model: _D,
    where: _Where,
    kind: str,
    errors: list[SpecError],
) -> None:
    name = model.metadata.name
    if name in table:
        first = table[name][0]
        message = f"duplicate {kind} {name!r} (first defined in {first.file})"
        errors.append(where.error("metadata.name", message))
        return
    table[name] = (where, model)


def _register(parsed: _Parsed, registry: _Registry, errors: list[SpecError]) -> None:
    model, where = parsed.model, parsed.where
    if isinstance(model, _OSLIDocument):
        _add(registry.slis, model=model, where=where, kind="SLI", errors=errors)
    elif isinstance(model, _OServiceDocument):
        _add(registry.services, model=model, where=where, kind="Service", errors=errors)
    elif isinstance(model, _OAlertPolicyDocument):
        _add(registry.policies, model=model, where=where, kind="AlertPolicy", errors=errors)


def parse_slos(sources: Iterable[SpecSource]) -> tuple[SLO, ...]:
    """Parse spec files (multi-document YAML, OpenSLO v1 and native) into SLOs.

    References (``indicatorRef``, ``alertPolicyRef``, services) resolve across all sources.
    The result is sorted by service and name. Raises :class:`SpecErrors` listing every
    problem found, one per field.
    """
    errors: list[SpecError] = []
    parsed: list[_Parsed] = []
    for source in sources:
        try:
            documents = _yaml_documents(source)
        except SpecErrors as exc:
            errors.extend(exc.errors)
            continue
        for where, data in documents:
            try:
                parsed.append(_parse_document(where, data))
            except SpecErrors as exc:
                errors.extend(exc.errors)
    registry = _Registry(slis={}, services={}, policies={})
    for item in parsed:
        _register(item, registry, errors)
    slos: list[SLO] = []
    seen: dict[str, str] = {}
    for item in parsed:
        model, where = item.model, item.where
        try:
            if isinstance(model, _NativeDocument):
                found = [_native_to_slo(model, source=where.file)]
            elif isinstance(model, _OSLODocument):
                found = _openslo_to_slos(model, where=where, registry=registry)
            else:
                continue
        except _FieldProblem as problem:
            errors.append(where.error(problem.field, problem.message))
            continue
        except SpecErrors as exc:
            errors.extend(exc.errors)
            continue
        except ValidationError as exc:
            errors.extend(_validation_errors(exc, where=where, openslo=True))
            continue
        for slo in found:
            if slo.key in seen:
                errors.append(
                    where.error(
                        "metadata.name",
                        f"duplicate SLO {slo.key!r} (first defined in {seen[slo.key]})",
                    )
                )
                continue
            seen[slo.key] = where.file
            slos.append(slo)
    if errors:
        raise SpecErrors(errors)
    return tuple(sorted(slos, key=lambda s: (s.service, s.name)))
