"""Settings fail fast on values the services could not work with."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from app.core.config import Settings

DSN = "postgresql://postgres@127.0.0.1:5432,127.0.0.1:5433/inventory"


def test_a_multi_host_dsn_is_accepted_verbatim() -> None:
    settings = Settings(database_url=DSN, replica_url="")
    assert settings.database_url == DSN
    assert settings.replica_url is None


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("database_url", "mysql://x/db", "postgresql://"),
        ("database_url", "postgresql://127.0.0.1:5432", "names no database"),
        ("redis_url", "http://127.0.0.1:6379", "redis://"),
        ("otlp_endpoint", "127.0.0.1:4318", "http"),
        ("trace_sample_ratio", 1.5, "less than or equal"),
    ],
)
def test_bad_values_are_refused_naming_the_field(field: str, value: object, reason: str) -> None:
    values: dict[str, object] = {"database_url": DSN, field: value}
    with pytest.raises(ValidationError, match=reason) as info:
        Settings(**values)  # type: ignore[arg-type]
    assert field in str(info.value)


def test_environment_variables_are_read_when_settings_are_built(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("INVENTORY_DATABASE_URL", DSN)
    monkeypatch.setenv("INVENTORY_WORKER_BATCH_SIZE", "250")
    settings = Settings()  # type: ignore[call-arg]
    assert settings.worker_batch_size == 250


def test_default_page_size_cannot_exceed_the_maximum() -> None:
    with pytest.raises(ValidationError, match="default_page_size"):
        Settings(database_url=DSN, default_page_size=600, max_page_size=500)
