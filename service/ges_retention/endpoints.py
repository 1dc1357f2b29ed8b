"""Where GES requests go: the rules for an endpoint URL and for a project id, in one place.

A policy's `endpoint`, `GES_RETENTION_ENDPOINT`, `GES_RETENTION_IAM_ENDPOINT` and the clients that use them all check
an endpoint the same way, and the policy file, the client and the emulator agree on what a project id is.
"""

from __future__ import annotations

import re
from typing import Final
from urllib.parse import urlsplit

from ges_retention.errors import shorten

__all__ = ["PROJECT_ID_RE", "check_endpoint"]

# Letters and digits, at most 64: what IAM issues, and safe as one URL path segment without quoting.
PROJECT_ID_RE: Final = re.compile(r"[A-Za-z0-9]{1,64}")


def check_endpoint(value: str, *, what: str = "endpoint") -> str:
    """`value` without a trailing slash, or `ValueError` in plain words: an http(s) URL with a host and a valid port,
    no credentials, query or fragment (each would be silently dropped or sent where it does not belong).

    The messages never quote a user-info part: a URL written with a password in it must not put it in a log line.
    """
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{what} must be an http(s) URL, got {shorten(value)}")
    if any(ord(c) < 0x21 or ord(c) == 0x7F for c in value):
        raise ValueError(f"{what} must not contain spaces or control characters")
    parts = urlsplit(value)
    if "@" in parts.netloc:
        raise ValueError(f"{what} must not carry credentials (user:password@)")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{what} must be an http(s) URL with a host, got {shorten(value)}")
    if parts.query or parts.fragment or value.endswith(("?", "#")):
        raise ValueError(f"{what} must not carry a query or a fragment")
    try:
        port = parts.port  # raises on a port that is not a number in 0..65535
    except ValueError:
        port = 0
    if port == 0:
        raise ValueError(f"{what} has an invalid port (a number from 1 to 65535): {shorten(value)}")
    return value.rstrip("/")
