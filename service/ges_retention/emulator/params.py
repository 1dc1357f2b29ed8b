"""What a GES request's path and query may hold (plain path segments, a valid project id, offset/limit paging), and
the id the emulator answers it with.

A raw segment that is `.`/`..`, percent-encoded or holds anything but letters, digits and `-_.~` is refused with 400
GES.0001, so an id can never reach another resource. `offset` defaults to 0 and `limit` to 10; `limit` must be
1..1000 and `offset` >= 0.
"""

from __future__ import annotations

import re

from aiohttp import web

from ges_retention.emulator.config import PROJECT_ID_RE
from ges_retention.emulator.errors import bad_parameter

__all__ = ["DEFAULT_LIMIT", "MAX_LIMIT", "REQUEST_ID", "check_segments", "checked_path", "int_param", "paging"]

# The id this emulator answers a request with (`X-Request-Id`), for handlers that record it.
REQUEST_ID = web.RequestKey("ges_retention_request_id", str)

DEFAULT_LIMIT = 10
MAX_LIMIT = 1000
# Letters, digits and the unreserved marks; no '%', so the decoded path is the raw path. Not starting with '.'.
SEGMENT_RE = re.compile(r"[A-Za-z0-9_~-][A-Za-z0-9._~-]*")
DIGITS_RE = re.compile(r"[0-9]{1,18}")


def check_segments(request: web.Request) -> None:
    """Refuse a raw path with a segment that is not plain (see the module docstring)."""
    raw_path = request.raw_path.partition("?")[0]
    for segment in raw_path.split("/"):
        # Empty segments cannot fill a route variable: they only make a path unknown (404).
        if segment and not SEGMENT_RE.fullmatch(segment):
            raise bad_parameter(f"The path segment {segment[:100]!r} is not allowed.")


def checked_path(request: web.Request) -> str:
    """The project id, once every raw path segment is known to be plain."""
    check_segments(request)
    project_id = request.match_info["project_id"]
    if not PROJECT_ID_RE.fullmatch(project_id):
        raise bad_parameter("project_id must be 1 to 64 letters and digits.")
    return project_id


def paging(request: web.Request, *, from_start: bool = False) -> tuple[int, int]:
    """(offset, limit), both checked; `from_start` (the `repeat` fault) answers offset 0 whatever was asked."""
    offset = int_param(request, "offset", 0, 0, None)
    limit = int_param(request, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
    return (0 if from_start else offset), limit


def int_param(request: web.Request, name: str, default: int, low: int, high: int | None) -> int:
    values = request.query.getall(name, [])
    if not values:
        return default
    bounds = f"from {low} to {high}" if high is not None else f">= {low}"
    if len(values) > 1 or not DIGITS_RE.fullmatch(values[0]):
        raise bad_parameter(f"{name} must be one integer {bounds}.")
    value = int(values[0])
    if value < low or (high is not None and value > high):
        raise bad_parameter(f"{name} must be an integer {bounds}, got {value}.")
    return value


# -- assembly -------------------------------------------------------------------------------------------------------
