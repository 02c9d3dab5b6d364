"""The overview's refresh: an unchanged table is neither drawn again nor sent again."""

from __future__ import annotations

from datetime import timedelta

from dash import no_update

from dashboards.history import Point
from dashboards.pages.overview.callbacks import DrawnTables, _table_key, _unless_shown
from dashboards.status import worst_first
from tests.unit.dashboards.data import NOW, status


def _series(*minutes_ago: int) -> list[Point]:
    return [
        Point(at=NOW - timedelta(minutes=m), sli=0.999, budget_remaining=0.5) for m in minutes_ago
    ]


def test_the_table_key_changes_only_with_what_the_table_shows() -> None:
    items = worst_first([status("a"), status("b")])
    key = _table_key(items, {"a": _series(2, 1)})
    assert _table_key(worst_first([status("a"), status("b")]), {"a": _series(2, 1)}) == key
    newer = worst_first([status("a", evaluated_at=NOW + timedelta(seconds=30)), status("b")])
    assert _table_key(newer, {"a": _series(2, 1)}) != key
    assert _table_key(items, {"a": _series(2, 1, 0)}) != key  # the sparkline grew
    assert _table_key(items, {"b": _series(2, 1)}) != key  # the other row has it
    stale = worst_first([status("a", stale=True), status("b")])
    assert _table_key(stale, {"a": _series(2, 1)}) != key


def test_a_drawn_table_is_kept_and_not_sent_when_the_browser_has_it() -> None:
    drawn = DrawnTables(most=2)
    table, digest = drawn.keep("k1", "<table>1</table>")
    assert drawn.get("k1") == (table, digest)
    drawn.keep("k2", "<table>2</table>")
    drawn.keep("k3", "<table>3</table>")
    assert drawn.get("k1") is None  # the oldest went
    assert _unless_shown(table, digest, None) == (table, digest)
    assert _unless_shown(table, digest, digest) == (no_update, no_update)
    other = drawn.keep("k4", "<table>4</table>")
    assert other[1] != digest
