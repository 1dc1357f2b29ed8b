"""What the client tells its owner about requests: the runner logs and counts through this, the client never logs.

Observer methods are called on the event loop, inline with the request: they must be quick and must not raise.
"""

from __future__ import annotations

from typing import Protocol

__all__ = ["NullObserver", "RequestObserver"]


class RequestObserver(Protocol):
    def on_response(self, operation: str, status: int, duration_s: float) -> None:
        """Every HTTP answer, success or not (`duration_s`: send to body read, one attempt)."""

    def on_retry(self, operation: str, attempt: int, error: BaseException, retry_in_s: float) -> None:
        """Attempt number `attempt` failed with `error`; another starts in `retry_in_s` seconds."""

    def on_throttled(self, operation: str, status: int, retry_in_s: float) -> None:
        """A 429 (or the gateway's throttling code): the request is retried in `retry_in_s` seconds."""

    def on_auth_ok(self) -> None:
        """An answer proved that the credentials were accepted."""

    def on_rate_limit(self, endpoint: str, project_id: str, rate_per_s: float) -> None:
        """The pacer of (endpoint, project) now paces at `rate_per_s` (0 = no limit): at start, on a 429, and as an
        adaptive rate moves (by 1% or more)."""


class NullObserver:
    """The default: observes nothing."""

    __slots__ = ()

    def on_response(self, operation: str, status: int, duration_s: float) -> None:
        pass

    def on_retry(self, operation: str, attempt: int, error: BaseException, retry_in_s: float) -> None:
        pass

    def on_throttled(self, operation: str, status: int, retry_in_s: float) -> None:
        pass

    def on_auth_ok(self) -> None:
        pass

    def on_rate_limit(self, endpoint: str, project_id: str, rate_per_s: float) -> None:
        pass
