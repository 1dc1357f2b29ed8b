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
