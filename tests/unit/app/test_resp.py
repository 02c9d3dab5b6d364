"""The API's Redis protocol codec."""

from __future__ import annotations

import pytest

from app.core.resp import RedisAddress, RespError, _Incomplete, encode_command, parse_reply


def test_commands_are_arrays_of_bulk_strings() -> None:
    assert encode_command(["SET", "k", 5, b"\x00v"]) == (
        b"*4\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\n5\r\n$2\r\n\x00v\r\n"
    )


def test_every_reply_type_is_parsed() -> None:
    data = b"+OK\r\n:42\r\n$3\r\nabc\r\n$-1\r\n*2\r\n$1\r\na\r\n*1\r\n:1\r\n*-1\r\n-NOSCRIPT no\r\n"
    replies = []
    pos = 0
    while pos < len(data):
        reply, pos = parse_reply(data, pos)
        replies.append(reply)
    assert replies[:6] == [b"OK", 42, b"abc", None, [b"a", [1]], None]
    assert isinstance(replies[6], RespError)
    assert replies[6].kind == "NOSCRIPT"


@pytest.mark.parametrize("partial", [b"$5\r\nab", b"*2\r\n:1\r\n", b"+OK", b"$3\r\nabc\r"])
def test_a_partial_reply_waits_for_more_data(partial: bytes) -> None:
    with pytest.raises(_Incomplete):
        parse_reply(partial, 0)


def test_redis_urls() -> None:
    address = RedisAddress.from_url("redis://:s%40cret@10.0.0.5:6380/2")
    assert (address.host, address.port, address.db, address.password) == (
        "10.0.0.5",
        6380,
        2,
        "s@cret",
    )
    with pytest.raises(ValueError, match="redis://"):
        RedisAddress.from_url("rediss://host:6379/0")
