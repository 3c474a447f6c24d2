"""The webhook routes' schemas: a webhook as created (its secret, once) and as listed, and its deliveries."""
from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from app.webhooks import signing
from app.webhooks.addresses import parse
from app.webhooks.outbox import EVENT_TYPES


def _http_url(url: str) -> str:
    parse(url)  # RefusedUrl is a ValueError: a 422 naming url. The address check is the service's.
    return url


def _known_events(events: list[str]) -> list[str]:
    unknown = [e for e in events if e not in EVENT_TYPES]
    if unknown:
        raise ValueError(f"unknown event type {unknown[0]!r}; known: {', '.join(EVENT_TYPES)}")
    return list(dict.fromkeys(events))  # a repeat is the same subscription


def _secret(secret: str | None) -> str | None:
    if secret is not None:
        signing.secret_bytes(secret)
    return secret


class WebhookCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"url": "https://hooks.example.com/trainyard", "events": ["job.succeeded", "job.failed"]}]})
    url: Annotated[str, Field(min_length=1, max_length=2000, description="an http(s) URL on a public address"),
                   AfterValidator(_http_url)]
    events: Annotated[list[str], Field(min_length=1, max_length=len(EVENT_TYPES) * 4,
                                       description=f"event types to send: {', '.join(EVENT_TYPES)}"),
                      AfterValidator(_known_events)]
    secret: Annotated[str | None, Field(max_length=200, description=(
        "the signing secret, whsec_ + base64 of 24 to 64 random bytes; absent: one is generated")),
        AfterValidator(_secret)] = None


class WebhookRead(BaseModel):
    """A webhook as listed: never its secret."""

    model_config = ConfigDict(from_attributes=True)

    id: str
    url: str
    events: list[str]
    created_at: datetime


class WebhookCreated(WebhookRead):
    secret: str = Field(description="the signing secret (whsec_...), shown this once: keep it to verify deliveries")


class WebhookPage(BaseModel):
    items: list[WebhookRead]
    total: int
    limit: int
    offset: int


class DeliveryRead(BaseModel):
    """One event for the webhook: the same id (webhook-id) on every attempt."""

    model_config = ConfigDict(from_attributes=True)

    id: str = Field(description="the webhook-id header of every attempt")
    event_type: str
    status: Literal["pending", "delivered", "failed"] = Field(
        description="pending: not yet answered 2xx, retried with backoff; failed: given up after a day")
    attempts: int
    last_status_code: int | None = Field(description="the receiver's last answer; null: none (e.g. unreachable)")
    last_error: str | None
    next_attempt_at: datetime | None = Field(description="when it is tried next (pending only)")
    created_at: datetime
    last_attempt_at: datetime | None
    delivered_at: datetime | None
    payload: dict


class DeliveryPage(BaseModel):
    items: list[DeliveryRead]
    total: int
    limit: int
    offset: int
