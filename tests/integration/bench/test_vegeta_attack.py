"""The pinned vegeta (``make bootstrap``) against a real loopback server for about a second:
the rate it reaches, the latencies and statuses per route, its own CPU.

Missing binary: a failure in CI mode (``CI=true`` / ``REQUIRE_BACKENDS=1``), else a skip.
"""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

import pytest

from bench import vegeta
from tests.support.backends import backends_required
from tests.support.tiny_http import SLOW_SECONDS, tiny_server

pytestmark = pytest.mark.integration

RATE = 60
SECONDS = 1.0


@pytest.fixture(scope="module")
def vegeta_binary() -> Path:
    try:
        return vegeta.binary()
    except vegeta.VegetaError as exc:
        if backends_required():
            pytest.fail(f"{exc} (CI mode: a missing tool is a failure)", pytrace=False)
        pytest.skip(str(exc))


def test_constant_rate_attack_reports_rate_routes_and_latencies(
    vegeta_binary: Path, tmp_path: Path
) -> None:
    with tiny_server() as served:
        targets = [
            vegeta.Target("GET", f"{served.url}/fast", route="fast"),
            vegeta.Target("GET", f"{served.url}/slow", route="slow"),
            vegeta.Target("POST", f"{served.url}/items", {"X-Run": "1"}, b'{"n":1}'),
            vegeta.Target("GET", f"{served.url}/missing", route="missing"),
        ]
        attack = vegeta.attack(
            targets, rate=RATE, duration=SECONDS, workdir=tmp_path, vegeta=vegeta_binary
        )
        answered = sum(served.answered.values())

    report = attack.report
    # Constant rate: RATE requests per second over the duration, every one answered.
    assert abs(report.requests - RATE * SECONDS) <= 2
    assert report.rate == pytest.approx(RATE, rel=0.1)
    assert answered == report.requests
    # Round-robin over the four targets; the server's own count per route agrees.
    routes = attack.routes
    assert set(routes) == {"fast", "slow", "POST /items", "missing"}
    assert sum(r.requests for r in routes.values()) == report.requests
    assert routes["fast"].statuses == {200: served.answered[("GET", "/fast", 200)]}
    assert routes["POST /items"].statuses == {201: served.answered[("POST", "/items", 201)]}
    assert routes["missing"].statuses == {404: routes["missing"].requests}
    # vegeta's report and the per-route figures read from its results agree.
    by_code: Counter[int] = Counter()
    for figures in routes.values():
        by_code.update(figures.statuses)
    assert report.status_codes == dict(by_code)
    assert report.success == pytest.approx(1 - routes["missing"].requests / report.requests)
    # Latencies in milliseconds: the slow route waits SLOW_SECONDS, the fast one does not.
    assert routes["slow"].p50_ms >= SLOW_SECONDS * 1000
    assert routes["fast"].p50_ms < SLOW_SECONDS * 1000
    for figures in routes.values():
        assert 0 < figures.p50_ms <= figures.p99_ms <= figures.max_ms
    assert 0 < report.p50_ms <= report.p99_ms <= report.max_ms
    assert report.max_ms >= SLOW_SECONDS * 1000
    # The HDR spectrum runs from the minimum to the maximum, percentiles ascending.
    assert attack.hdr[0][0] == 0
    assert attack.hdr[-1][0] == 100
    assert attack.quantile_ms(99) <= attack.quantile_ms(100)
    # The generator's own CPU: positive, and far below two cores for 60 requests/s.
    assert attack.generator.cpu_s > 0
    assert attack.generator.wall_s >= SECONDS
    assert 0 < attack.generator_cpu < 2
    assert math.isfinite(attack.generator_cpu)


def test_unreachable_server_counts_as_failed_requests(vegeta_binary: Path, tmp_path: Path) -> None:
    with tiny_server() as served:
        url = served.url
    # The server is gone: every request fails to connect (status 0), none succeeds.
    attack = vegeta.attack(
        [vegeta.Target("GET", f"{url}/fast")],
        rate=20,
        duration=0.5,
        workdir=tmp_path,
        vegeta=vegeta_binary,
    )
    assert attack.report.requests >= 9
    assert attack.report.success == 0
    assert attack.report.status_codes == {0: attack.report.requests}
    assert attack.report.errors
    assert attack.routes["GET /fast"].statuses == {0: attack.report.requests}


def test_rate_zero_is_a_closed_loop_as_fast_as_its_workers(
    vegeta_binary: Path, tmp_path: Path
) -> None:
    with pytest.raises(ValueError, match="max_workers"):
        vegeta.attack(
            [vegeta.Target("GET", "http://127.0.0.1:1/")], rate=0, duration=1, workdir=tmp_path
        )
    with tiny_server() as served:
        # Two workers on a route that takes SLOW_SECONDS: each waits for its answer before the
        # next request, so about 2 / SLOW_SECONDS requests per second, never more.
        attack = vegeta.attack(
            [vegeta.Target("GET", f"{served.url}/slow", route="slow")],
            rate=0,
            duration=1.0,
            workdir=tmp_path,
            max_workers=2,
            max_connections=2,
            vegeta=vegeta_binary,
        )
        answered = served.answered[("GET", "/slow", 200)]
    ceiling = 2 / SLOW_SECONDS
    assert attack.target_rate == 0
    assert attack.report.success == 1
    assert answered == attack.report.requests
    assert 0.5 * ceiling <= attack.report.throughput <= 1.1 * ceiling
