"""Threshold settings shared by the stream detectors' configurations."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["BurstThreshold", "Seconds", "SustainedThreshold"]

Seconds = Annotated[float, Field(gt=0, le=30 * 86400)]
"""A positive duration in seconds, at most 30 days."""


class BurstThreshold(BaseModel):
    """At least ``count`` events within ``window`` seconds.

    A burst ends after ``window`` seconds without a matching event.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    count: Annotated[int, Field(ge=1, le=1_000_000)]
    window: Seconds


class SustainedThreshold(BaseModel):
    """At least ``count`` events over at least ``duration`` seconds, no gap over ``gap``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    count: Annotated[int, Field(ge=1, le=1_000_000)]
    duration: Annotated[float, Field(ge=0, le=30 * 86400)]
    gap: Seconds
