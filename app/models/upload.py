"""The uploads and upload_parts tables: a resumable upload in progress and the parts it has received."""
from datetime import datetime

from sqlalchemy import JSON, BigInteger, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, UTCDateTime, utcnow


class Upload(Base):
    __tablename__ = "uploads"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), index=True)
    filename: Mapped[str] = mapped_column(String(255))  # its extension picks the parser at complete
    name: Mapped[str] = mapped_column(String(200))
    targets: Mapped[list[str]] = mapped_column(JSON)
    size: Mapped[int] = mapped_column(BigInteger)
    part_size: Mapped[int] = mapped_column(BigInteger)
    parts_expected: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Moved on by every part received: an upload expires once nothing has reached it for a while.
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    # Set while a complete assembles and ingests the parts (outside the row's transaction, so no
    # lock is held for the parse); parts are refused meanwhile. A stale one is claimed again.
    completing_since: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    # Once completed: the dataset it became. The row stays (its parts are gone) until it expires, so
    # a client whose connection dropped during the complete reads the dataset rather than starting over.
    dataset_id: Mapped[str | None] = mapped_column(String(40), default=None)


class UploadPart(Base):
    __tablename__ = "upload_parts"

    upload_id: Mapped[str] = mapped_column(ForeignKey("uploads.id"), primary_key=True)
    n: Mapped[int] = mapped_column(Integer, primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
