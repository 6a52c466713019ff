"""How a :class:`~tierwise.outbox.drain.Drainer` paces its rounds and posts callbacks
(pydantic, handed to the drainer)."""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = ["DrainerSettings"]

_MEDIA_TYPE = re.compile(r"[!-~]+/[!-~]+(?: *;[ -~]*)?")


class DrainerSettings(BaseModel):
    """One drainer's pacing and callback policy.

    Each round claims up to ``batch_size`` due items, each under a ``lease_s`` lease
    (which must outlast ``deliver``'s own timeout and the item's callback tries), and
    delivers them concurrently; an idle or unhealthy drainer looks again after
    ``poll_s``. Callbacks are POSTed with ``callback_content_type``, each try limited to
    ``callback_timeout_s``, up to ``callback_attempts`` tries per claim with exponential
    backoff from ``callback_backoff_s``; a callback answer over ``callback_max_response_bytes``
    counts as a failed try.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False, strict=True)

    poll_s: float = Field(default=1.0, gt=0, description="seconds between looks when idle")
    batch_size: int = Field(default=16, ge=1, description="items claimed per round")
    lease_s: float = Field(default=60.0, gt=0, description="seconds an item stays claimed")
    callback_attempts: int = Field(default=3, ge=1, description="tries per callback and claim")
    callback_backoff_s: float = Field(
        default=0.5, ge=0, description="wait before the second try; doubles after each"
    )
    callback_timeout_s: float = Field(default=10.0, gt=0, description="limit of one try")
    callback_content_type: str = Field(
        default="application/json", description="content-type header of callbacks"
    )
    callback_max_response_bytes: int = Field(
        default=1024 * 1024, ge=1, description="largest callback answer read"
    )

    @field_validator("callback_content_type")
    @classmethod
    def _media_type(cls, value: str) -> str:
        if not _MEDIA_TYPE.fullmatch(value):
            raise ValueError("expected a media type such as application/json (ASCII, one line)")
        return value
