"""The two APIs as real processes on real backends, for schemathesis to fuzz.

* The inventory API (gunicorn, one worker) and a stream worker on their own PostgreSQL database
  (primary + streaming replica) and Redis stream, exactly as ``tests/integration/app`` runs them.
* The control plane (``uvicorn --factory alerts.wiring:create_app``, webhook receiver mounted)
  on its own PostgreSQL database, with the real Prometheus, Elasticsearch and Jaeger as its
  sources, tokens of each role and the webhook token.

Fuzzing is bounded (``FUZZ_SETTINGS``: a fixed number of examples per operation, derandomised,
no per-example deadline) so it adds a couple of minutes to ``make test``; every case sent is
counted in the session's figures (``tests/support/figures.py``).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, assume, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import Case, GenerationMode
from schemathesis.generation.stateful.state_machine import APIStateMachine
from schemathesis.schemas import BaseSchema
from schemathesis.specs.openapi.checks import positive_data_acceptance

from controlplane.core.security import Role
from controlplane.stack.backends import (
    Elasticsearch,
    Jaeger,
    PostgresPrimary,
    PostgresReplica,
    Redis,
)
from controlplane.store.database import Database
from controlplane.store.tokens import create_token
from tests.integration.app.conftest import (
    Api,
    Databases,
    Stack,
    create_database,
    stack_env,
    unique,
)
from tests.integration.controlplane.processes import ControlPlaneProcess
from tests.support.backends import PrometheusFactory
from tests.support.figures import Figures

#: Per operation (stateless) and per run (stateful): bounded, and the same cases every run. No
#: shrinking: the servers keep state between cases, so a replay is not the same request twice
#: (a created item exists the second time); the first failing case is reported as it was.
FUZZ_SETTINGS = settings(
    max_examples=15,
    deadline=None,
    derandomize=True,
    database=None,
    phases=[Phase.explicit, Phase.generate],
    report_multiple_bugs=False,
    suppress_health_check=list(HealthCheck),
)
STATEFUL_SETTINGS = settings(
    FUZZ_SETTINGS, max_examples=10, stateful_step_count=6, derandomize=False
)

WEBHOOK_TOKEN = "fuzz-webhook-token-0123456789abcdef"

#: Every check runs (no 5xx; status code, content type, headers and body as documented; data
#: that breaks the schema refused; ...) but one: schemathesis' "schema-valid data must be
#: accepted". Rules across fields (a shipment's quantity is positive, an adjustment's is not
#: zero), references to what must exist (an unknown SKU is a 422) and opaque page cursors are
#: not expressible in the schema, so valid-looking requests are rightly refused with a 422.
EXCLUDED_CHECKS = [positive_data_acceptance]


@dataclass
class InventoryTarget:
    api: Api
    databases: Databases
    schema: BaseSchema
    redis_url: str
    stream: str


@pytest.fixture(scope="module")
def inventory_target(
    tmp_path_factory: pytest.TempPathFactory,
    postgres_primary: PostgresPrimary,
    postgres_replica: PostgresReplica,
    redis_server: Redis,
) -> Iterator[InventoryTarget]:
    databases = Databases(
        name=create_database(postgres_primary), primary=postgres_primary, replica=postgres_replica
    )
    stream = unique("fuzz:movements")
    env = stack_env(dbs=databases, redis=redis_server, stream=stream)
    env["INVENTORY_BENCH_ENDPOINTS"] = "false"  # test helpers, not the API
    stack = Stack(tmp=tmp_path_factory.mktemp("fuzz-inventory"), base_env=env)
    try:
        api = stack.api(workers=1)
        stack.worker()
        schema = schemathesis.openapi.from_url(f"{api.url}/api/v1/openapi.json")
        schema.config.update(base_url=api.url)
        yield InventoryTarget(
            api=api,
            databases=databases,
            schema=schema,
            redis_url=redis_server.url,
            stream=stream,
        )
    finally:
        stack.stop_all()


@dataclass
class ControlPlaneTarget:
    process: ControlPlaneProcess
    database: Database
    tokens: dict[Role, str]
    schema: BaseSchema

    def headers_for(self, path: str) -> dict[str, str]:
        """The webhook takes Alertmanager's token; everything else an admin's."""
        token = WEBHOOK_TOKEN if path.endswith("/alerts/webhook") else self.tokens[Role.ADMIN]
        return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="module")
def controlplane_target(
    tmp_path_factory: pytest.TempPathFactory,
    postgres_primary: PostgresPrimary,
    prometheus_factory: PrometheusFactory,
    elasticsearch: Elasticsearch,
    jaeger: Jaeger,
) -> Iterator[ControlPlaneTarget]:
    name = f"cp_fuzz_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(postgres_primary.dsn(), autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    url = f"postgresql://postgres@127.0.0.1:{postgres_primary.port}/{name}"
    database = Database.from_url(url.replace("postgresql://", "postgresql+psycopg://", 1))
    folder = Path(tmp_path_factory.mktemp("fuzz-controlplane"))
    process: ControlPlaneProcess | None = None
    try:
        database.migrate()
        tokens: dict[Role, str] = {}
        with database.writer() as session:
            for role in Role:
                _, tokens[role] = create_token(
                    session, name=f"fuzz-{role.value}", role=role, at=datetime.now(UTC)
                )
        prometheus = prometheus_factory(config={"global": {"scrape_interval": "15s"}})
        process = ControlPlaneProcess(
            settings={
                "database_url": url,
                "data_dir": str(folder / "data"),
                "webhook_token": WEBHOOK_TOKEN,
                "prometheus_url": prometheus.url,
                "elasticsearch_url": elasticsearch.url,
                "jaeger_url": jaeger.query_url,
                "replica_id": "fuzz",
            },
            log_path=folder / "controlplane.log",
        )
        process.start()
        schema = schemathesis.openapi.from_url(
            f"{process.url}/api/v1/openapi.json",
            headers={"Authorization": f"Bearer {tokens[Role.ADMIN]}"},
        )
        schema.config.update(base_url=process.url)
        # The token is the test's to send (each operation's own, see headers_for).
        schema.config.generation.update(with_security_parameters=False)
        yield ControlPlaneTarget(process=process, database=database, tokens=tokens, schema=schema)
    finally:
        if process is not None:
            process.stop()
        database.dispose()
        with psycopg.connect(postgres_primary.dsn(), autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def record(figures: Figures, api: str, response: Any) -> None:
    figures.fuzz_case(api, int(response.status_code))


def _array_query_parameters(operation: Any) -> frozenset[str]:
    """Names of the operation's query parameters that take a list (``?slo=a&slo=b``)."""

    def is_array(schema: Any) -> bool:
        if not isinstance(schema, dict):
            return False
        if schema.get("type") == "array":
            return True
        return any(is_array(option) for option in schema.get("anyOf", ()))

    return frozenset(p.name for p in operation.query if is_array(p.definition.get("schema")))


def _list_sent_as_one_value(case: Case, arrays: frozenset[str]) -> bool:
    """A negative case that "breaks" a list parameter by giving it one plain value: in a query
    string ``?slo=x`` is also the list ``[x]``, so the request the server gets is valid and
    answering 200 is right (schemathesis cannot tell the two apart once serialized)."""
    query = case.query or {}
    return any(name in query and not isinstance(query[name], list) for name in arrays)


def fuzz_every_operation(
    schema: BaseSchema,
    *,
    api: str,
    figures: Figures,
    headers_for: Callable[[str], dict[str, str]] = lambda _path: {},
) -> list[str]:
    """Send each operation of ``schema`` data that fits it and data that does not (bounded by
    ``FUZZ_SETTINGS``), validate every response with schemathesis' checks; returns one line per
    operation and mode that failed, with the failing case (Hypothesis' smallest)."""
    failures: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()
        arrays = _array_query_parameters(operation)
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @FUZZ_SETTINGS
            @given(case=operation.as_strategy(generation_mode=mode))
            def one(case: Case) -> None:
                # one() runs within this iteration, so mode and arrays are this loop's.
                if mode is GenerationMode.NEGATIVE:  # noqa: B023
                    assume(not _list_sent_as_one_value(case, arrays))  # noqa: B023
                headers = headers_for(case.path)
                response = case.call(headers=headers)
                record(figures, api, response)
                case.validate_response(response, headers=headers, excluded_checks=EXCLUDED_CHECKS)

            try:
                one()
            except Unsatisfiable:
                continue  # nothing to send that breaks the schema (no parameters, no body)
            except (Exception, BaseExceptionGroup) as exc:  # a failing case: report, go on
                failures.append(f"{operation.label} ({mode.value}): {exc}")
    return failures


def sequences(
    schema: BaseSchema,
    *,
    api: str,
    figures: Figures,
    headers_for: Callable[[str], dict[str, str]] = lambda _path: {},
) -> type[APIStateMachine]:
    """schemathesis' state machine over ``schema``: sequences of calls chained by the links it
    infers (an item created, then read by its SKU, its stock read, a movement queued, then its
    status read ...), each response checked as in :func:`fuzz_every_operation`."""

    class Sequences(schema.as_state_machine()):  # type: ignore[misc]
        def get_call_kwargs(self, case: Case) -> dict[str, Any]:
            return {"headers": headers_for(case.path)}

        def after_call(self, response: Any, case: Case) -> None:
            record(figures, api, response)
            super().after_call(response, case)

        def validate_response(
            self,
            response: Any,
            case: Case,
            additional_checks: Any = None,
            **kwargs: Any,
        ) -> None:
            case.validate_response(
                response,
                headers=kwargs.get("headers"),
                excluded_checks=EXCLUDED_CHECKS,
                transport_kwargs=kwargs or None,
            )

    return Sequences


def links_of(machine: type[APIStateMachine]) -> list[str]:
    """The links the state machine inferred, as ``source -> status -> target``."""
    transitions = machine._transitions.operations  # type: ignore[attr-defined]
    return sorted(
        f"{link.source.label} -> {link.status_code} -> {label}"
        for label, found in transitions.items()
        for link in found.incoming
    )
