"""The server's start-up: the long-lived heap is frozen out of the garbage collector's walks."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from app import serve

REPO_ROOT = Path(__file__).resolve().parents[3]

PROBE = """
import gc
import app.main
from app import serve
before = len(gc.get_objects())
serve.freeze_heap()
after = len(gc.get_objects())
print(before, after, gc.get_freeze_count())
"""


def test_after_freezing_a_full_collection_walks_a_small_part_of_the_startup_heap() -> None:
    # A fresh interpreter: freezing this test process would keep its garbage forever.
    out = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    ).stdout
    before, after, frozen = map(int, out.split())
    assert before > 50_000, "the app's modules alone are tens of thousands of objects"
    assert after < before // 20, f"{after} of {before} objects still walked by a full collection"
    assert frozen >= before - after - 1_000


def test_every_worker_freezes_its_app_before_serving() -> None:
    options = serve.gunicorn_options(serve.parse_args(["--workers", "3"]))
    assert options["post_worker_init"] is serve._post_worker_init
    assert options["workers"] == 3
