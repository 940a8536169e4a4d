"""Stored responses of idempotent creates, so a retried POST replays instead of creating twice."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Index, Text, Uuid
from sqlmodel import Field, SQLModel

from src.models.task import USER_ID_MAX_LENGTH
from src.models.types import UTCDateTime

IDEMPOTENCY_KEY_MAX_LENGTH = 255


class IdempotencyRecord(SQLModel, table=True):
    """One `Idempotency-Key` of one user: what the first request asked for and what it was answered."""

    __tablename__ = "idempotency_keys"
    __table_args__ = (Index("ix_idempotency_keys_expires_at", "expires_at"),)

    user_id: str = Field(primary_key=True, max_length=USER_ID_MAX_LENGTH)
    key: str = Field(primary_key=True, max_length=IDEMPOTENCY_KEY_MAX_LENGTH)
    request_fingerprint: str = Field(max_length=64, description="SHA-256 of the validated request body.")
    task_id: uuid.UUID = Field(sa_type=Uuid)
    response_body: str = Field(sa_type=Text, description="The task as the first response returned it.")
    created_at: datetime = Field(sa_type=UTCDateTime)
    expires_at: datetime = Field(sa_type=UTCDateTime)
