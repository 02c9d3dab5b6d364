"""Injected slowness: matching API requests hold the worker; probes never do; the file is
re-read when it changes; a broken file or a bad CLI argument is refused with a reason."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest
from starlette.types import Message, Receive, Scope, Send

from app.faults import FaultInjector, Faults, main, read_faults, write_faults


async def endpoint(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"{}"})


def timed(app: FaultInjector, *, method: str, path: str) -> float:
    scope: Scope = {"type": "http", "method": method, "path": path}
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b""}

    async def send(message: Message) -> None:
        sent.append(message)

    start = time.perf_counter()
    asyncio.run(app(scope, receive, send))
    elapsed = time.perf_counter() - start
    headers = dict(sent[0]["headers"])
    assert headers[b"x-inventory-worker"] == str(os.getpid()).encode()  # drill mode names it
    return elapsed


def test_matching_requests_are_slowed_and_probes_are_not(tmp_path: Path) -> None:
    path = tmp_path / "faults.json"
    write_faults(path, Faults(service_time_ms=150, methods=("GET",)))
    app = FaultInjector(endpoint, path=path, check_interval=0)

    assert timed(app, method="GET", path="/api/v1/stock/SKU-1") >= 0.15
    assert timed(app, method="POST", path="/api/v1/movements") < 0.1
    assert timed(app, method="GET", path="/readyz") < 0.1
    assert timed(app, method="GET", path="/metrics") < 0.1


def test_changes_to_the_file_take_effect_without_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "faults.json"
    app = FaultInjector(endpoint, path=path, check_interval=0)
    assert timed(app, method="GET", path="/api/v1/items") < 0.1  # no file: no fault

    write_faults(path, Faults(service_time_ms=120))
    assert timed(app, method="GET", path="/api/v1/items") >= 0.12

    write_faults(path, Faults())
    assert timed(app, method="GET", path="/api/v1/items") < 0.1


def test_a_broken_file_injects_nothing_and_says_why(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "faults.json"
    path.write_text('{"service_time_ms": -5}', encoding="utf-8")
    app = FaultInjector(endpoint, path=path, check_interval=0)

    assert timed(app, method="GET", path="/api/v1/items") < 0.1
    assert "fault file ignored" in caplog.text
    with pytest.raises(ValueError, match="greater than or equal to 0"):
        read_faults(path)


def test_cli_sets_shows_and_clears(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "faults.json"
    assert main(["set", "--file", str(path), "--service-time-ms", "200"]) == 0
    assert read_faults(path) == Faults(service_time_ms=200, methods=("GET",))
    assert '"service_time_ms":200' in capsys.readouterr().out

    assert main(["clear", "--file", str(path)]) == 0
    assert not read_faults(path).active


def test_cli_refuses_bad_values_and_keeps_the_old_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "faults.json"
    write_faults(path, Faults(service_time_ms=80))

    assert main(["set", "--file", str(path), "--service-time-ms", "-1"]) == 2
    assert "service_time_ms" in capsys.readouterr().err
    assert main(["set", "--file", str(path), "--service-time-ms", "5", "--methods", "FETCH"]) == 2
    assert read_faults(path) == Faults(service_time_ms=80)


def test_slow_requests_queue_for_the_worker_while_probes_are_answered(tmp_path: Path) -> None:
    path = tmp_path / "faults.json"
    write_faults(path, Faults(service_time_ms=100))
    app = FaultInjector(endpoint, path=path, check_interval=0)

    async def one(path_: str) -> float:
        scope: Scope = {"type": "http", "method": "GET", "path": path_}

        async def receive() -> Message:
            return {"type": "http.request", "body": b""}

        async def send(message: Message) -> None:
            return None

        start = time.perf_counter()
        await app(scope, receive, send)
        return time.perf_counter() - start

    async def together() -> list[float]:
        reads = [asyncio.create_task(one("/api/v1/items")) for _ in range(3)]
        await asyncio.sleep(0.01)
        probe = await one("/readyz")
        return [probe, *sorted(await asyncio.gather(*reads))]

    probe, *reads = asyncio.run(together())
    assert probe < 0.05  # the worker's loop is free while its slot is busy
    assert reads[0] >= 0.1
    assert reads[2] >= 0.3  # the third read waited for the two before it
