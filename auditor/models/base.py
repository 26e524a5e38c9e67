"""Shared configuration and field types of the data contracts."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict


def _to_utc(value: datetime) -> datetime:
    try:
        return value.astimezone(UTC)
    except OverflowError:  # 9999-12-31T23:59:59-01:00 has no UTC time: a validation error
        raise ValueError("the time in UTC is out of range") from None


UtcDatetime = Annotated[AwareDatetime, AfterValidator(_to_utc)]
"""An RFC 3339 time that must carry a zone; stored and emitted in UTC."""


class Contract(BaseModel):
    """Base of every contract: unknown fields are errors, instances are immutable.

    Validation errors do not repeat the input: a producer that sends a token where a
    claim belongs must not see it echoed into an exception, a log or a dead letter.
    """

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        hide_input_in_errors=True,
        str_max_length=8192,
        use_enum_values=False,
        validate_default=False,
    )
