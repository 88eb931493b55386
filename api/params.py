"""Query and path numbers shared by the routes, bounded so that no number a database driver cannot
hold (above 2^63, or negative where that means nothing) ever reaches a query: 422 instead."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Query

from foundry.generation.schemas import MAX_IMAGES_PER_REQUEST

MAX_INT32 = 2**31 - 1
"""The largest value of the INTEGER columns that counts and amounts are stored in (and a sane offset)."""

PageLimit = Annotated[int, Query(ge=1, le=200)]
"""Page size of the admin and model list routes (each defaults to 50)."""
Offset = Annotated[int, Query(ge=0, le=MAX_INT32, description="How many items to skip (0 to 2^31-1).")]
Threshold = Annotated[int | None, Query(ge=0, le=MAX_INT32,
                                        description="Minimum payout in minor units; default from settings.")]
ImageIndex = Annotated[int, Path(ge=0, le=MAX_IMAGES_PER_REQUEST - 1,
                                 description="Position of the image in its generation, from 0.")]
Period = Annotated[str, Path(pattern=r"^[0-9]{4}-[0-9]{2}$", examples=["2026-11"],
                             description="A calendar month in UTC, YYYY-MM (month 01-12).")]
Cursor = Annotated[str | None, Query(max_length=200, pattern=r"^[A-Za-z0-9_-]+$",
                                     description="Opaque: the next_cursor of the previous page (URL-safe base64).")]
