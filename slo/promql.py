"""Prometheus series selectors: a small parser and a canonical renderer.

SLI specs name their counters with plain series selectors such as
``http_server_request_duration_seconds_count{service="inventory",status_code=~"5.."}``.
Parsing them (instead of pasting strings into templates) lets the spec loader reject anything
that is not a selector and lets the rule generator add matchers (``le`` for latency buckets).
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict

__all__ = ["MatchOp", "Matcher", "Selector", "SelectorError", "le_matcher", "parse_selector"]

MatchOp = Literal["=", "!=", "=~", "!~"]

_METRIC = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_OP = re.compile(r"=~|!~|!=|=")
_ESCAPES = {"\\": "\\", '"': '"', "'": "'", "n": "\n", "t": "\t"}


class SelectorError(ValueError):
    """A string is not a Prometheus series selector."""


class Matcher(BaseModel):
    """One label matcher, e.g. ``status_code=~"5.."``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    label: str
    op: MatchOp
    value: str

    def render(self) -> str:
        escaped = self.value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        return f'{self.label}{self.op}"{escaped}"'


class Selector(BaseModel):
    """A series selector: a metric name and label matchers (kept in the order written)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    metric: str
    matchers: tuple[Matcher, ...] = ()

    def render(self) -> str:
        """Canonical PromQL text: ``name{a="b",c=~"d"}`` (no braces when there are no matchers)."""
        if not self.matchers:
            return self.metric
        return self.metric + "{" + ",".join(m.render() for m in self.matchers) + "}"

    def with_metric(self, metric: str) -> Selector:
        return Selector(metric=metric, matchers=self.matchers)

    def with_matcher(self, matcher: Matcher) -> Selector:
        """Return a copy with ``matcher`` appended (replacing any matcher on the same label)."""
        kept = tuple(m for m in self.matchers if m.label != matcher.label)
        return Selector(metric=self.metric, matchers=(*kept, matcher))

    def equality_labels(self) -> dict[str, str]:
        return {m.label: m.value for m in self.matchers if m.op == "="}


def _read_string(text: str, pos: int) -> tuple[str, int]:
    quote = text[pos]
    out: list[str] = []
    pos += 1
    while pos < len(text):
        char = text[pos]
        if char == "\\":
            if pos + 1 >= len(text) or text[pos + 1] not in _ESCAPES:
                raise SelectorError(f"invalid escape in label value at offset {pos}")
            out.append(_ESCAPES[text[pos + 1]])
            pos += 2
            continue
        if char == quote:
            return "".join(out), pos + 1
        out.append(char)
        pos += 1
    raise SelectorError("unterminated label value")


def _skip_spaces(text: str, pos: int) -> int:
    while pos < len(text) and text[pos].isspace():
        pos += 1
    return pos


def parse_selector(text: str) -> Selector:
    """Parse ``metric{label="value",...}``; raise :class:`SelectorError` on anything else.

    Only series selectors are accepted: no functions, ranges, offsets or operators. Label
    values may use double or single quotes; whitespace between tokens is allowed.
    """
    source = text.strip()
    metric_match = _METRIC.match(source)
    if metric_match is None:
        raise SelectorError(
            f'not a Prometheus series selector: {text!r} (expected metric_name{{label="value"}})'
        )
    metric = metric_match.group(0)
    pos = _skip_spaces(source, metric_match.end())
    matchers: list[Matcher] = []
    if pos < len(source):
        if source[pos] != "{":
            raise SelectorError(
                f"not a Prometheus series selector: {text!r} (only metric{{matchers}} is allowed, "
                "no functions, ranges or operators)"
            )
        pos = _skip_spaces(source, pos + 1)
        while True:
            if pos < len(source) and source[pos] == "}":
                pos += 1
                break
            label_match = _LABEL.match(source, pos)
            if label_match is None:
                raise SelectorError(f"expected a label name at offset {pos} in {text!r}")
            pos = _skip_spaces(source, label_match.end())
            op_match = _OP.match(source, pos)
            if op_match is None:
                raise SelectorError(f"expected =, !=, =~ or !~ at offset {pos} in {text!r}")
            pos = _skip_spaces(source, op_match.end())
            if pos >= len(source) or source[pos] not in "\"'":
                raise SelectorError(f"expected a quoted label value at offset {pos} in {text!r}")
            value, pos = _read_string(source, pos)
            op: MatchOp
            if op_match.group(0) == "=":
                op = "="
            elif op_match.group(0) == "!=":
                op = "!="
            elif op_match.group(0) == "=~":
                op = "=~"
            else:
                op = "!~"
            matchers.append(Matcher(label=label_match.group(0), op=op, value=value))
            pos = _skip_spaces(source, pos)
            if pos < len(source) and source[pos] == ",":
                pos = _skip_spaces(source, pos + 1)
                continue
            if pos < len(source) and source[pos] == "}":
                pos += 1
                break
            raise SelectorError(f"expected ',' or '}}' at offset {pos} in {text!r}")
        if _skip_spaces(source, pos) != len(source):
            raise SelectorError(
                f"not a Prometheus series selector: {text!r} (unexpected text after '}}')"
            )
    return Selector(metric=metric, matchers=tuple(matchers))


def _le_spellings(threshold: float) -> tuple[str, ...]:
    """The ways exporters write a bucket bound: Go writes ``5``, Python and Prometheus 3 ``5.0``."""
    python = repr(float(threshold))
    if float(threshold).is_integer():
        return (str(int(threshold)), python)
    return (python,)


def le_matcher(threshold: float) -> Matcher:
    """Matcher for the bucket whose upper bound equals ``threshold`` exactly.

    For whole-number bounds both spellings (``5`` and ``5.0``) are matched with an anchored
    regular expression; only one of them exists for a given exporter, so nothing is counted twice.
    """
    spellings = _le_spellings(threshold)
    if len(spellings) == 1:
        return Matcher(label="le", op="=", value=spellings[0])
    return Matcher(label="le", op="=~", value="|".join(re.escape(s) for s in spellings))
