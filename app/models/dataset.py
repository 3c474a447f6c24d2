from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Float, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, UTCDateTime, utcnow


class Dataset(Base):
    __tablename__ = "datasets"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    source_format: Mapped[str] = mapped_column(String(10))  # csv | npz | json
    # Content address of the stored, normalized .npz (x, y) in the artifact folder.
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    bytes: Mapped[int] = mapped_column(BigInteger)
    rows: Mapped[int] = mapped_column(Integer)
    feature_shape: Mapped[list[int]] = mapped_column(JSON)
    target_shape: Mapped[list[int]] = mapped_column(JSON)
    target_kind: Mapped[str] = mapped_column(String(12))  # integer | float
    # Target range, so the pre-flight check can test class labels against the output.
    target_min: Mapped[float] = mapped_column(Float)
    target_max: Mapped[float] = mapped_column(Float)
    feature_names: Mapped[list[str] | None] = mapped_column(JSON, default=None)
    target_names: Mapped[list[str] | None] = mapped_column(JSON, default=None)
    # Class labels in index order when targets were categorical or integer.
    classes: Mapped[list[Any] | None] = mapped_column(JSON, default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
