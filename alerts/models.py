"""The Alertmanager webhook payload (version 4) as pydantic models.

Field names follow the wire format (``startsAt``, ``groupKey``, ``notification_reason``, ...);
unknown fields are kept (``extra="allow"``) so a newer Alertmanager never breaks the receiver, but
a payload whose ``version`` is not ``"4"`` is refused. ``routeLabels`` and
``notification_reason`` are only sent by recent Alertmanager releases and are optional.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationInfo,
    field_validator,
    model_validator,
)

from controlplane.core.validation import POSTGRES_INT_MAX, refuse_nul
from controlplane.store.alerts import IncomingAlert, IncomingDelivery

__all__ = ["AlertStatus", "WebhookAlert", "WebhookPayload"]

AlertStatus = Literal["firing", "resolved"]

#: Validation context key: the JSON text was seen to hold no NUL character.
_NUL_FREE = "nul_free"

#: Go's zero time: what Alertmanager sends as ``endsAt`` of an alert with no end yet.
_GO_ZERO_YEAR = 1


class WebhookAlert(BaseModel):
    """One alert of a notification."""

    model_config = ConfigDict(extra="allow", populate_by_name=True, frozen=True)

    status: AlertStatus
    labels: dict[str, str]
    annotations: dict[str, str] = Field(default_factory=dict)
    starts_at: AwareDatetime = Field(alias="startsAt")
    ends_at: AwareDatetime | None = Field(default=None, alias="endsAt")
    generator_url: str = Field(default="", alias="generatorURL")
    fingerprint: str = Field(min_length=1, max_length=64)

    @field_validator("ends_at")
    @classmethod
    def _zero_time_is_none(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.year == _GO_ZERO_YEAR:
            return None
        return value


class WebhookPayload(BaseModel):
    """A notification as Alertmanager's webhook receiver posts it."""

    model_config = ConfigDict(
        extra="allow",
        populate_by_name=True,
        frozen=True,
        title="AlertmanagerWebhook",
    )

    version: Literal["4"]
    group_key: str = Field(alias="groupKey")
    truncated_alerts: int = Field(default=0, ge=0, le=POSTGRES_INT_MAX, alias="truncatedAlerts")
    status: AlertStatus
    receiver: str = Field(min_length=1, max_length=200)
    group_labels: dict[str, str] = Field(default_factory=dict, alias="groupLabels")
    common_labels: dict[str, str] = Field(default_factory=dict, alias="commonLabels")
    common_annotations: dict[str, str] = Field(default_factory=dict, alias="commonAnnotations")
    route_labels: dict[str, str] | None = Field(default=None, alias="routeLabels")
    external_url: str = Field(default="", alias="externalURL")
    notification_reason: str | None = Field(default=None, max_length=64)
    alerts: list[WebhookAlert] = Field(min_length=1)

    #: The payload as stored (JSON-ready, by alias), made once by the validation.
    _stored: dict[str, Any] = PrivateAttr(default_factory=dict)

    @classmethod
    def from_json(cls, body: bytes) -> WebhookPayload:
        """The payload of a request body (raises ``ValidationError``). A JSON text can spell a
        NUL character only as the escape ``\\u0000`` (raw control characters are refused by
        the parser): a body without that escape is not searched for NULs again."""
        return cls.model_validate_json(body, context={_NUL_FREE: b"\\u0000" not in body})

    @model_validator(mode="after")
    def _storable(self, info: ValidationInfo) -> WebhookPayload:
        """The payload is stored as received (unknown fields too): one that PostgreSQL cannot
        store is refused with a 422 naming the field, never a 500 that Alertmanager retries."""
        stored = self.model_dump(by_alias=True, mode="json")
        if not (info.context or {}).get(_NUL_FREE):
            refuse_nul(stored)
        self._stored = stored
        return self

    def to_delivery(self) -> IncomingDelivery:
        """The delivery in the store's terms (the full payload kept as received). Built without
        validating again: every field was validated here, under the same or tighter rules."""
        return IncomingDelivery.model_construct(
            receiver=self.receiver,
            status=self.status,
            group_key=self.group_key,
            truncated_alerts=self.truncated_alerts,
            notification_reason=self.notification_reason,
            alerts=tuple(
                IncomingAlert.model_construct(
                    fingerprint=alert.fingerprint,
                    status=alert.status,
                    starts_at=alert.starts_at,
                    ends_at=alert.ends_at,
                    labels=alert.labels,
                    annotations=alert.annotations,
                    generator_url=alert.generator_url,
                )
                for alert in self.alerts
            ),
            payload=self._stored or self.model_dump(mode="json", by_alias=True),
        )

    @classmethod
    def openapi_components(cls) -> dict[str, Any]:
        """JSON schemas of the payload and its parts, ready for OpenAPI ``components``."""
        schema = cls.model_json_schema(by_alias=True, ref_template="#/components/schemas/{model}")
        definitions: dict[str, Any] = schema.pop("$defs", {})
        return {**definitions, str(schema.get("title", cls.__name__)): schema}
