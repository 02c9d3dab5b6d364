"""The near cache never keeps an entry that Redis invalidated while it was being read."""

from __future__ import annotations

from app.services.cache import CACHE_PREFIX, NearCache


def near() -> NearCache:
    cache = NearCache(url="redis://127.0.0.1:6379/0", timeout=0.5, max_entries=3)
    cache.enabled = True
    return cache


def push(*skus: str) -> list[object]:
    return [b"message", b"__redis__:invalidate", [(CACHE_PREFIX + s).encode() for s in skus]]


def test_an_entry_read_without_interference_is_kept_until_invalidated() -> None:
    cache = near()
    token = cache.token()
    cache.store("A", body=b"{}", token=token)
    assert cache.get("A") == b"{}"
    cache._on_push(push("A"))
    assert cache.get("A") is None


def test_an_invalidation_during_the_read_wins() -> None:
    cache = near()
    token = cache.token()
    cache._on_push(push("A"))  # arrives while the GET is in flight
    cache.store("A", body=b"old", token=token)
    assert cache.get("A") is None
    cache.store("B", body=b"other", token=token)
    assert cache.get("B") == b"other", "other keys are not affected"


def test_a_flush_or_a_lost_connection_empties_and_disables() -> None:
    cache = near()
    token = cache.token()
    cache.store("A", body=b"{}", token=token)
    cache._on_push([b"message", b"__redis__:invalidate", None])
    assert cache.get("A") is None
    cache.store("A", body=b"{}", token=token)
    assert cache.get("A") is None, "reads begun before the flush are not kept"
    cache._disable()
    cache.store("A", body=b"{}", token=cache.token())
    assert cache.get("A") is None


def test_the_size_is_bounded() -> None:
    cache = near()
    for sku in "ABCD":
        cache.store(sku, body=b"{}", token=cache.token())
    assert len(cache.entries) <= 3
