"""Elasticsearch and Jaeger down: the log SLI turns ``no_data`` (never a number), a finding says
the evaluation cannot read Elasticsearch, and the console's SLO detail page still renders, saying
why its traces and logs are missing; all of it recovers when they come back.

The real Elasticsearch and Jaeger of this test hold seeded log lines and traces of the inventory
service; ``controlplane serve`` evaluates the shipped log-based SLO every 2 s; the console runs
as its own process and is read in headless Chromium.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from elasticsearch import Elasticsearch as ElasticsearchClient

from controlplane.stack.backends import Elasticsearch, Jaeger
from controlplane.targets.reconcile import INPUT_UNAVAILABLE
from tests.chaos.conftest import WEBHOOK_TOKEN, Replicas, Store
from tests.chaos.tools import open_findings
from tests.integration.app.conftest import eventually
from tests.integration.dashboards.browser import Browser, ConsoleProcess, headless_browser
from tests.integration.dashboards.seed import index_logs, send_traces
from tests.support.backends import BackendPool, PrometheusFactory, launch
from tests.support.figures import Figures

REPO = Path(__file__).resolve().parents[2]
LOG_SLO = "log-error-events"
FINDING = "check/slo-evaluation/elasticsearch"


@pytest.fixture
def browser() -> Iterator[Browser]:
    with headless_browser() as found:
        yield found


def index_traffic(url: str, *, now: datetime) -> None:
    """150 log events of the inventory service in the last minutes, one at level error."""
    client = ElasticsearchClient(url, request_timeout=30)
    index = f"logs-inventory-{now:%Y.%m.%d}"
    operations: list[dict[str, Any]] = []
    for n in range(150):
        operations += [
            {"index": {"_index": index}},
            {
                "@timestamp": (now - timedelta(seconds=2 * n)).isoformat().replace("+00:00", "Z"),
                "log": {"level": "error" if n == 7 else "info"},
                "message": f"request {n}",
                "service": {"name": "inventory"},
                "trace": {"id": uuid.uuid4().hex},
            },
        ]
    response = client.bulk(operations=operations, refresh="wait_for")
    client.close()
    assert not response["errors"], response


def status_of(url: str, headers: dict[str, str], slo: str) -> dict[str, Any] | None:
    answer = httpx.get(f"{url}/api/v1/slos/{slo}", headers=headers, timeout=10)
    return answer.json() if answer.status_code == 200 else None


def page_text(browser: Browser, url: str, css: str, *, contains: str) -> str:
    """Open ``url`` in the console and wait until ``css`` shows ``contains``; its text."""
    browser.driver.execute_script("window.sessionStorage.clear()")
    browser.open(url)
    browser.wait_for("main .page")
    text: str = browser.wait(
        lambda: (found := browser.text(css)) and contains in found and found,
        timeout=60,
        what=f"{contains!r} in {css}",
    )
    return text


def test_elasticsearch_and_jaeger_down_log_slis_no_data_and_the_detail_page_says_why(
    backend_pool: BackendPool,
    prometheus_factory: PrometheusFactory,
    store: Store,
    replicas: Replicas,
    browser: Browser,
    tmp_path: Path,
    figures: Figures,
) -> None:
    elasticsearch: Elasticsearch = launch(backend_pool, Elasticsearch)
    jaeger: Jaeger = launch(backend_pool, Jaeger)
    console: ConsoleProcess | None = None
    try:
        now = datetime.now(UTC).replace(microsecond=0)
        traces = send_traces(
            otlp_http_endpoint=jaeger.otlp_http_endpoint, query_url=jaeger.query_url, now=now
        )
        index_logs(url=elasticsearch.url, trace_id=traces["slowest"], now=now)
        index_traffic(elasticsearch.url, now=now)
        specs = tmp_path / "specs"
        specs.mkdir()
        for name in ("inventory-logs.yaml", "inventory-api.yaml"):
            (specs / name).write_text(
                (REPO / "slo" / "specs" / name).read_text(encoding="utf-8"), encoding="utf-8"
            )
        control = replicas.start(
            "controlplane",
            {
                "database_url": store.url,
                "data_dir": str(tmp_path / "data"),
                "webhook_token": WEBHOOK_TOKEN,
                "prometheus_url": prometheus_factory(config={}).url,
                "elasticsearch_url": elasticsearch.url,
                "jaeger_url": jaeger.query_url,
                "slo_specs": str(specs),
                "evaluation_interval_seconds": "2",
                "source_timeout_seconds": "2",
                "source_retry_attempts": "1",
                "actions_enabled": "false",
            },
        )
        before = eventually(
            lambda: (
                (s := status_of(control.url, store.headers, LOG_SLO)) and s["state"] == "ok" and s
            ),
            timeout=60,
            what="the log SLO evaluated",
        )
        workdir = tmp_path / "console"
        workdir.mkdir()
        token = store.headers["Authorization"].removeprefix("Bearer ")
        console = ConsoleProcess(control_plane=control.url, token=token, workdir=workdir).start()
        browser.driver.execute_script("window.sessionStorage.clear()")
        browser.open(f"{console.url}/slo/read-latency")
        browser.wait(lambda: browser.find('tr[data-kind="slow"]'), timeout=60, what="trace rows")

        backend_pool.stop(elasticsearch)
        backend_pool.stop(jaeger)
        down_at = time.monotonic()
        during = eventually(
            lambda: (
                (s := status_of(control.url, store.headers, LOG_SLO))
                and s["state"] == "no_data"
                and s
            ),
            timeout=30,
            what="the log SLO without data",
        )
        no_data_s = time.monotonic() - down_at
        finding = eventually(
            lambda: FINDING in open_findings(control.url, store.headers, kind=INPUT_UNAVAILABLE),
            timeout=30,
            what="the finding",
        )
        traces_panel = page_text(
            browser,
            f"{console.url}/slo/read-latency",
            "#detail-slow-traces .state",
            contains="no data: jaeger source_unavailable",
        )
        log_header = page_text(
            browser,
            f"{console.url}/slo/{LOG_SLO}",
            "#detail-header",
            contains="source unavailable: elasticsearch",
        )
        logs_answer = httpx.get(
            f"{control.url}/api/v1/traces/{traces['slowest']}/logs",
            headers=store.headers,
            timeout=30,
        ).json()

        backend_pool.start(elasticsearch)
        backend_pool.start(jaeger)
        back_at = time.monotonic()
        eventually(
            lambda: (
                (s := status_of(control.url, store.headers, LOG_SLO))
                and s["state"] == "ok"
                and FINDING not in open_findings(control.url, store.headers, kind=INPUT_UNAVAILABLE)
            ),
            timeout=60,
            what="the log SLO back and the finding resolved",
        )
        recovered_s = time.monotonic() - back_at
    finally:
        if console is not None:
            console.stop()
        backend_pool.stop(elasticsearch)
        backend_pool.stop(jaeger)

    held = (
        during["sli"] is None
        and during["no_data_reason"].startswith("source unavailable: elasticsearch")
        and bool(finding)
        and logs_answer["no_data"]["reason"] == "source_unavailable"
    )
    figures.fault(
        "Elasticsearch and Jaeger down",
        must_hold="log SLIs no_data, a finding opened; the console's detail page degrades with "
        "a message; recovery when they come back",
        seen=f"log SLO {before['state']} → no_data {no_data_s:.1f} s after "
        f"({during['no_data_reason'][:60]}…), finding opened; detail page: traces "
        f'"{traces_panel[:60]}…", header "…source unavailable: elasticsearch…", trace logs '
        f"{logs_answer['no_data']['source']} {logs_answer['no_data']['reason']}; back to ok and "
        f"resolved {recovered_s:.1f} s after the restart",
        survived=held and "source unavailable: elasticsearch" in log_header,
        recovered_s=round(recovered_s, 1),
    )
    assert held, (during, logs_answer)
