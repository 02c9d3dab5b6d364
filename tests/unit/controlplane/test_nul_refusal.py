"""NUL characters are refused at the boundary, with the field named (PostgreSQL stores none)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from controlplane.core.validation import refuse_nul

pytestmark = pytest.mark.unit


def test_a_nul_anywhere_is_refused_naming_its_field() -> None:
    with pytest.raises(ValueError, match=r"^alerts\.1\.labels\.slo: NUL"):
        refuse_nul({"alerts": [{"labels": {}}, {"labels": {"slo": "a\x00b"}}]})
    with pytest.raises(ValueError, match=r"^labels\.k\x00ey: NUL"):
        refuse_nul({"labels": {"k\x00ey": "v"}})
    with pytest.raises(ValueError, match=r"^the value: NUL"):
        refuse_nul("\x00")


def test_values_without_nul_pass_even_when_they_spell_its_escape() -> None:
    refuse_nul({"summary": "the escape \\u0000 written out is six characters, not a NUL"})
    refuse_nul({"alerts": [{"labels": {"slo": "é ✓"}}], "count": 3, "none": None})


def test_values_json_cannot_write_are_still_walked() -> None:
    refuse_nul({"at": datetime(2026, 12, 5, tzinfo=UTC), "labels": {"a": "b"}})
    with pytest.raises(ValueError, match=r"^labels\.a: NUL"):
        refuse_nul({"at": datetime(2026, 12, 5, tzinfo=UTC), "labels": {"a": "\x00"}})
