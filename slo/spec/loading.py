"""Loading: YAML documents to input models by ``apiVersion`` and ``kind`` (Sloth files by
``version``), imports converted to OpenSLO, references resolved across files,
:func:`parse_specs` / :func:`parse_slos`, and :func:`convert_to_openslo`."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import yaml
from pydantic import ValidationError

from slo.spec.errors import (
    SpecError,
    SpecErrors,
    SpecNote,
    _FieldProblem,
    _validate,
    _validation_errors,
    _Where,
)
from slo.spec.model import SLO, TierPolicy
from slo.spec.native import NATIVE_API_VERSION, _native_to_slo, _NativeDocument
from slo.spec.openslo import (
    OPENSLO_API_VERSION,
    _OAlertPolicyDocument,
    _OConditionDocument,
    _ODataSourceDocument,
    _openslo_to_slos,
    _OServiceDocument,
    _OSLIDocument,
    _OSLODocument,
    _OTargetDocument,
    _Registry,
)
from slo.spec.pyrra import PYRRA_API_VERSION, _pyrra_to_openslo, _PyrraDocument
from slo.spec.sloth import SLOTH_VERSION, _sloth_to_openslo, _SlothDocument
from slo.spec.validators import _Input


@dataclass(frozen=True, kw_only=True)
class SpecSource:
    """The text of one spec file and the name to report it by (usually its path)."""

    name: str
    text: str


@dataclass(frozen=True, kw_only=True)
class ParsedSpecs:
    """The SLOs of a set of spec files, and the fields that were read but not carried over."""

    slos: tuple[SLO, ...]
    notes: tuple[SpecNote, ...]


@dataclass(frozen=True, kw_only=True)
class Conversion:
    """One Sloth or Pyrra file as OpenSLO v1 documents, and what was not carried over."""

    source: str
    documents: tuple[dict[str, Any], ...]
    notes: tuple[SpecNote, ...]
    origin: str

    def render(self) -> str:
        """The documents as one multi-document YAML text, headed by where they come from."""
        header = [f"# OpenSLO v1, converted from {self.origin} {self.source}"]
        if self.notes:
            header.append("# Fields of the source that are not in these documents:")
            header.extend(
                f"#   {'' if n.document is None else f'#{n.document} '}{n.field}: {n.message}"
                for n in self.notes
            )
        body = "".join(
            "---\n" + yaml.safe_dump(document, sort_keys=False, allow_unicode=True, width=100_000)
            for document in self.documents
        )
        return "\n".join(header) + "\n" + body


_OPENSLO_KINDS: dict[str, type[_Input]] = {
    "SLO": _OSLODocument,
    "SLI": _OSLIDocument,
    "Service": _OServiceDocument,
    "AlertPolicy": _OAlertPolicyDocument,
    "AlertCondition": _OConditionDocument,
    "AlertNotificationTarget": _OTargetDocument,
    "DataSource": _ODataSourceDocument,
}
_NATIVE_KINDS: dict[str, type[_Input]] = {"SLO": _NativeDocument}
_PYRRA_KINDS: dict[str, type[_Input]] = {"ServiceLevelObjective": _PyrraDocument}
_KINDS = {
    OPENSLO_API_VERSION: _OPENSLO_KINDS,
    NATIVE_API_VERSION: _NATIVE_KINDS,
    PYRRA_API_VERSION: _PYRRA_KINDS,
}
_FORMATS = (
    f"{OPENSLO_API_VERSION}, {NATIVE_API_VERSION}, {PYRRA_API_VERSION} (Pyrra) "
    f'or a Sloth file (version: "{SLOTH_VERSION}")'
)


@dataclass(frozen=True, kw_only=True)
class _Parsed:
    where: _Where
    model: _Input
    #: For a document converted from Sloth or Pyrra: what it was, e.g. ``Sloth slos[0]``.
    converted_from: str | None = None


#: libyaml's safe loader when PyYAML was built with it (about ten times faster on a thousand
#: specs), else the pure-Python one; both build the same plain values.
_SAFE_LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _yaml_documents(source: SpecSource) -> list[tuple[_Where, object]]:
    """The documents of a file: YAML documents, and the items of a document that is a list
    (how OpenSLO files are often written)."""
    try:
        loaded = [d for d in yaml.load_all(source.text, Loader=_SAFE_LOADER) if d is not None]
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        field = "(yaml)" if mark is None else f"line {mark.line + 1}, column {mark.column + 1}"
        problem = getattr(exc, "problem", None) or str(exc)
        raise SpecErrors(
            [SpecError(file=source.name, field=field, message=f"invalid YAML: {problem}")]
        ) from exc
    documents = [item for d in loaded for item in (d if isinstance(d, list) else [d])]
    if not documents:
        raise SpecErrors([SpecError(file=source.name, field="(file)", message="no documents")])
    multi = len(documents) > 1
    return [
        (_Where(file=source.name, document=i + 1 if multi else None), doc)
        for i, doc in enumerate(documents)
    ]


@dataclass(frozen=True, kw_only=True)
class _Imported:
    """A Sloth file or Pyrra object as OpenSLO documents (each with what it was)."""

    documents: list[tuple[str, dict[str, Any]]]
    notes: list[SpecNote]
    origin: str


def _import(where: _Where, data: dict[str, Any]) -> _Imported | None:
    """Sloth and Pyrra documents converted to OpenSLO; ``None`` for any other document."""
    if data.get("version") == SLOTH_VERSION and "apiVersion" not in data:
        sloth = _validate(_SlothDocument, data, where=where, openslo=False)
        documents, notes = _sloth_to_openslo(sloth, where=where)
        labelled = [(f"Sloth slos[{i}]", d) for i, d in enumerate(documents)]
        return _Imported(documents=labelled, notes=notes, origin="Sloth prometheus/v1")
    if data.get("apiVersion") == PYRRA_API_VERSION:
        _check_kind(where, data, _PYRRA_KINDS)
        pyrra = _validate(_PyrraDocument, data, where=where, openslo=False)
        documents, notes = _pyrra_to_openslo(pyrra, where=where)
        return _Imported(
            documents=[("Pyrra", d) for d in documents],
            notes=notes,
            origin=f"Pyrra {PYRRA_API_VERSION}",
        )
    return None


def _check_kind(where: _Where, data: dict[str, Any], kinds: dict[str, type[_Input]]) -> str:
    kind = data.get("kind")
    if kind is None:
        raise SpecErrors([where.error("kind", "required field is missing")])
    if not isinstance(kind, str) or kind not in kinds:
        expected = ", ".join(kinds)
        raise SpecErrors(
            [
                where.error(
                    "kind",
                    f"unknown kind {kind!r} for {data.get('apiVersion')}: expected {expected}",
                )
            ]
        )
    return kind


def _converted_document(where: _Where, label: str, document: dict[str, Any]) -> _Parsed:
    """A converted document read as OpenSLO; a problem names what it was converted from."""
    try:
        model = _OSLODocument.model_validate(document)
    except ValidationError as exc:
        raise SpecErrors(
            [
                where.error(f"{label} (as OpenSLO {e.field})", e.message)
                for e in _validation_errors(exc, where=where, data=document, openslo=True)
            ]
        ) from exc
    return _Parsed(where=where, model=model, converted_from=label)


def _parse_document(where: _Where, data: object, notes: list[SpecNote]) -> list[_Parsed]:
    if not isinstance(data, dict):
        raise SpecErrors([where.error("(document)", "expected a mapping with apiVersion and kind")])
    imported = _import(where, data)
    if imported is not None:
        notes.extend(imported.notes)
        return [_converted_document(where, label, doc) for label, doc in imported.documents]
    api_version = data.get("apiVersion")
    if api_version is None:
        raise SpecErrors(
            [where.error("apiVersion", f"required field is missing: expected {_FORMATS}")]
        )
    kinds = _KINDS.get(api_version) if isinstance(api_version, str) else None
    if kinds is None:
        raise SpecErrors(
            [where.error("apiVersion", f"unknown apiVersion {api_version!r}: expected {_FORMATS}")]
        )
    kind = _check_kind(where, data, kinds)
    model = _validate(kinds[kind], data, where=where, openslo=api_version == OPENSLO_API_VERSION)
    return [_Parsed(where=where, model=model)]


_D = TypeVar(
    "_D",
    _OSLIDocument,
    _OServiceDocument,
    _OAlertPolicyDocument,
    _OConditionDocument,
    _OTargetDocument,
    _ODataSourceDocument,
)


def _add(
    table: dict[str, tuple[_Where, _D]],
    *,
    model: _D,
    where: _Where,
    errors: list[SpecError],
) -> None:
    name = model.metadata.name
    if name in table:
        first = table[name][0]
        message = f"duplicate {model.kind} {name!r} (first defined in {first.file})"
        errors.append(where.error("metadata.name", message))
        return
    table[name] = (where, model)


def _register(
    parsed: _Parsed, registry: _Registry, errors: list[SpecError], notes: list[SpecNote]
) -> None:
    model, where = parsed.model, parsed.where
    if isinstance(model, _OSLIDocument):
        _add(registry.slis, model=model, where=where, errors=errors)
    elif isinstance(model, _OServiceDocument):
        _add(registry.services, model=model, where=where, errors=errors)
    elif isinstance(model, _OAlertPolicyDocument):
        _add(registry.policies, model=model, where=where, errors=errors)
    elif isinstance(model, _OConditionDocument):
        _add(registry.conditions, model=model, where=where, errors=errors)
    elif isinstance(model, _OTargetDocument):
        _add(registry.targets, model=model, where=where, errors=errors)
    elif isinstance(model, _ODataSourceDocument):
        _add(registry.sources, model=model, where=where, errors=errors)
        if model.spec.connectionDetails:
            notes.append(
                where.note(
                    "spec.connectionDetails",
                    "not used: the control plane queries the Prometheus or Elasticsearch of its "
                    "own settings",
                )
            )


def _read(
    sources: Iterable[SpecSource], errors: list[SpecError], notes: list[SpecNote]
) -> list[_Parsed]:
    parsed: list[_Parsed] = []
    for source in sources:
        try:
            documents = _yaml_documents(source)
        except SpecErrors as exc:
            errors.extend(exc.errors)
            continue
        for where, data in documents:
            try:
                parsed.extend(_parse_document(where, data, notes))
            except SpecErrors as exc:
                errors.extend(exc.errors)
    return parsed


def _to_slos(
    item: _Parsed, *, registry: _Registry, tiers: TierPolicy, notes: list[SpecNote]
) -> list[SLO]:
    model, where = item.model, item.where
    try:
        if isinstance(model, _NativeDocument):
            return [_native_to_slo(model, source=where.file, tiers=tiers)]
        if isinstance(model, _OSLODocument):
            return _openslo_to_slos(model, where=where, registry=registry, tiers=tiers, notes=notes)
    except _FieldProblem as problem:
        field = problem.field
        if item.converted_from is not None:
            field = f"{item.converted_from} (as OpenSLO {field})"
        raise SpecErrors([where.error(field, problem.message)]) from problem
    except ValidationError as exc:
        raise SpecErrors(_validation_errors(exc, where=where, openslo=True)) from exc
    return []


def parse_specs(sources: Iterable[SpecSource], *, tiers: TierPolicy | None = None) -> ParsedSpecs:
    """Parse spec files (multi-document YAML: OpenSLO v1, native, Sloth ``prometheus/v1``
    and Pyrra ``ServiceLevelObjective``) into SLOs.

    References (``indicatorRef``, ``alertPolicyRef``, ``conditionRef``, ``metricSourceRef``,
    services) resolve across all sources. A spec without a tier takes the one ``tiers`` gives
    its service (default: :data:`~slo.spec.model.DEFAULT_TIER`). The SLOs are sorted by
    service and name. Raises :class:`SpecErrors` listing every problem found, one per field.
    """
    errors: list[SpecError] = []
    notes: list[SpecNote] = []
    parsed = _read(sources, errors, notes)
    registry = _Registry.empty()
    for item in parsed:
        _register(item, registry, errors, notes)
    slos: list[SLO] = []
    seen: dict[str, str] = {}
    for item in parsed:
        try:
            found = _to_slos(item, registry=registry, tiers=tiers or TierPolicy(), notes=notes)
        except SpecErrors as exc:
            errors.extend(exc.errors)
            continue
        for slo in found:
            if slo.key in seen:
                errors.append(
                    item.where.error(
                        "metadata.name",
                        f"duplicate SLO {slo.key!r} (first defined in {seen[slo.key]})",
                    )
                )
                continue
            seen[slo.key] = item.where.file
            slos.append(slo)
    if errors:
        raise SpecErrors(errors)
    return ParsedSpecs(
        slos=tuple(sorted(slos, key=lambda s: (s.service, s.name))), notes=tuple(notes)
    )


def parse_slos(
    sources: Iterable[SpecSource], *, tiers: TierPolicy | None = None
) -> tuple[SLO, ...]:
    """:func:`parse_specs`' SLOs (for callers that report no notes)."""
    return parse_specs(sources, tiers=tiers).slos


def convert_to_openslo(sources: Sequence[SpecSource]) -> tuple[Conversion, ...]:
    """Sloth and Pyrra files as OpenSLO v1 documents, one :class:`Conversion` per file.

    Raises :class:`SpecErrors` for a file that is not Sloth or Pyrra, or that cannot be
    converted; the converted documents are checked as OpenSLO too.
    """
    errors: list[SpecError] = []
    conversions: list[Conversion] = []
    for source in sources:
        try:
            conversions.append(_convert_source(source))
        except SpecErrors as exc:
            errors.extend(exc.errors)
    if errors:
        raise SpecErrors(errors)
    return tuple(conversions)


def _convert_source(source: SpecSource) -> Conversion:
    documents: list[dict[str, Any]] = []
    notes: list[SpecNote] = []
    origins: list[str] = []
    errors: list[SpecError] = []
    for where, data in _yaml_documents(source):
        try:
            imported = _import(where, data) if isinstance(data, dict) else None
        except SpecErrors as exc:
            errors.extend(exc.errors)
            continue
        if imported is None:
            errors.append(
                where.error("(document)", "not a Sloth or Pyrra spec: nothing to convert")
            )
            continue
        for label, document in imported.documents:
            try:
                _converted_document(where, label, document)
            except SpecErrors as exc:
                errors.extend(exc.errors)
            documents.append(document)
        notes.extend(imported.notes)
        origins.append(imported.origin)
    if errors:
        raise SpecErrors(errors)
    return Conversion(
        source=source.name,
        documents=tuple(documents),
        notes=tuple(notes),
        origin=" and ".join(dict.fromkeys(origins)),
    )
