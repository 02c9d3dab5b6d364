"""gunicorn + uvicorn workers: the worker count changes at runtime (TTIN / TTOU), the metrics of
all workers are merged on /metrics, and requests keep being served meanwhile."""

from __future__ import annotations

import os
import re
import signal
from pathlib import Path

from tests.integration.app.conftest import Stack, eventually


def children(pid: int) -> set[int]:
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # pid (comm) state ppid ...: comm may hold spaces, so split after the last ')'.
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == pid:
            found.add(int(entry.name))
    return found


def test_ttin_and_ttou_change_the_number_of_workers(stack: Stack) -> None:
    api = stack.api(workers=1)
    master = api.master_pid()
    assert len(children(master)) == 1

    os.kill(master, signal.SIGTTIN)
    eventually(lambda: len(children(master)) == 2, timeout=30, what="a second worker")
    os.kill(master, signal.SIGTTIN)
    eventually(lambda: len(children(master)) == 3, timeout=30, what="a third worker")

    with api.client() as client:
        for _ in range(60):
            assert client.get("/api/v1/bench/constant").status_code == 200
        os.kill(master, signal.SIGTTOU)
        eventually(lambda: len(children(master)) == 2, timeout=30, what="one worker fewer")
        for _ in range(60):
            assert client.get("/api/v1/bench/constant").status_code == 200
        text = client.get("/metrics").text

    pattern = (
        r'http_server_requests_total\{method="GET",route="/api/v1/bench/constant",'
        r'service="inventory",status_code="200"\} (\S+)'
    )
    match = re.search(pattern, text)
    assert match is not None
    assert float(match.group(1)) == 120.0, "samples of every worker, including the stopped one"
    assert "inventory_db_pool_size" in text
