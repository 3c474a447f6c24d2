"""The key routes' schemas: a key as listed (never its secret nor its digest), and as created (the secret, once)."""
from datetime import datetime, timezone
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, computed_field

from app.models.base import utcnow


def _no_nul(name: str) -> str:
    if "\x00" in name:
        raise ValueError("must not contain a NUL character")
    return name


def _in_utc(moment: datetime) -> datetime:
    """A time without a zone is read as UTC; one with a zone is kept as that instant."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=timezone.utc)
    try:
        return moment.astimezone(timezone.utc)
    except OverflowError:  # 9999-12-31T23:59-01:00 is past the last datetime
        raise ValueError("must be a time before the year 10000") from None


KeyName = Annotated[str, Field(min_length=1, max_length=200, examples=["laptop"]), AfterValidator(_no_nul)]


class KeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"name": "ci", "expires_at": "2027-01-01T00:00:00Z"}]})
    name: KeyName
    expires_at: Annotated[datetime | None, AfterValidator(lambda v: v and _in_utc(v)), Field(
        description="ISO 8601, in the future (UTC when it names no zone); absent or null: the key never expires")] = None


class KeyRead(BaseModel):
    """An API key as listed: what identifies it and its state, never the key nor its digest."""

    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str
    prefix: str = Field(description="the key's first characters, to recognise it by")
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None = Field(description="the last authentication with it, to within a minute")
    revoked_at: datetime | None

    @computed_field
    @property
    def status(self) -> Literal["active", "expired", "revoked"]:
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= utcnow():
            return "expired"
        return "active"


class KeyCreated(KeyRead):
    key: str = Field(description="the API key itself, shown this once: only its SHA-256 digest is stored")


class KeyPage(BaseModel):
    items: list[KeyRead]
    total: int
    limit: int
    offset: int
