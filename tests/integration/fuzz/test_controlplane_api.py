"""schemathesis on the control plane's OpenAPI schema (the Alertmanager webhook included, with
its token; every other operation with an admin's), against the real ``uvicorn`` process on its
real PostgreSQL store with the real Prometheus, Elasticsearch and Jaeger behind it: no 5xx,
every response as the schema says, and afterwards nothing partial in the store."""

from __future__ import annotations

from sqlalchemy import text

from tests.integration.fuzz.conftest import (
    STATEFUL_SETTINGS,
    ControlPlaneTarget,
    fuzz_every_operation,
    sequences,
)
from tests.support.figures import Figures

API = "controlplane"


def test_every_operation_answers_as_documented(
    controlplane_target: ControlPlaneTarget, figures: Figures
) -> None:
    failures = fuzz_every_operation(
        controlplane_target.schema,
        api=API,
        figures=figures,
        headers_for=controlplane_target.headers_for,
    )
    assert not failures, "\n\n".join(failures)


def test_sequences_answer_as_documented(
    controlplane_target: ControlPlaneTarget, figures: Figures
) -> None:
    sequences(
        controlplane_target.schema,
        api=API,
        figures=figures,
        headers_for=controlplane_target.headers_for,
    ).run(settings=STATEFUL_SETTINGS)


#: Each query returns the rows that break one rule of a complete write.
PARTIAL = {
    "a delivery whose outcomes name an alert that does not exist": """
        SELECT d.id FROM alert_deliveries d, jsonb_array_elements(d.outcomes) o
         WHERE NOT EXISTS (SELECT 1 FROM alerts a WHERE a.id = (o->>'alert_id')::bigint)
    """,
    "a delivery whose counts disagree with its outcomes": """
        SELECT id FROM alert_deliveries
         WHERE alert_count <> jsonb_array_length(outcomes)
            OR changed_count + repeat_count > alert_count
    """,
    "an alert no stored delivery brought": """
        SELECT a.id FROM alerts a
         WHERE NOT EXISTS (
             SELECT 1 FROM alert_deliveries d, jsonb_array_elements(d.outcomes) o
              WHERE (o->>'alert_id')::bigint = a.id)
    """,
    "an alert closed without a close time, or open with one": """
        SELECT id FROM alerts
         WHERE (status = 'resolved') <> (closed_at IS NOT NULL)
            OR last_received_at < first_received_at
    """,
    "a drill with a finish before its start": """
        SELECT id FROM drills WHERE finished_at < started_at
    """,
}


def test_after_the_fuzzing_the_store_holds_nothing_partial(
    controlplane_target: ControlPlaneTarget,
) -> None:
    with controlplane_target.database.reader() as session:
        deliveries = session.execute(text("SELECT count(*) FROM alert_deliveries")).scalar_one()
        broken = {
            rule: [row[0] for row in session.execute(text(sql))] for rule, sql in PARTIAL.items()
        }
    assert deliveries > 0, "the fuzzing stored no webhook delivery at all"
    assert {rule: rows for rule, rows in broken.items() if rows} == {}
