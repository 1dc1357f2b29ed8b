"""Every way a GES call can fail, as one exception hierarchy.

```
GesError                      operation, status, error_code, error_msg, request_id, attempts, retryable
├── TransportError            no HTTP answer: refused, reset, DNS, broken body        retryable
│   ├── RequestTimeout        no answer within the request timeout                    retryable
│   └── TlsError              the server's certificate failed verification            fatal
├── ApiError                  an HTTP answer that is not a success (+ retry_after_s)
│   ├── ThrottledError        429, APIGW.0308                                         retryable
│   ├── ServerError           5xx, 408, GES.7005, APIGW.0201, APIGW.0613              retryable (not 501, 505)
│   ├── AuthError             the credentials were refused
│   │   ├── Unauthorized      401 (the client refreshes refreshable credentials once) fatal
│   │   ├── Forbidden         403, GES.7041                                           fatal
│   │   └── AgencyRefused     IAM would not assume a policy's agency (agency_refused)  fatal
│   ├── NotFoundError         404 without GES.7024; GES.0016; GES.7024 (not a delete) fatal
│   └── BadRequestError       any other 4xx: GES.0001, GES.7001, ...                  fatal
│       ├── GraphGoneError    GES.7000, GES.7054: the graph is gone or going          fatal
│       └── BackupBusyError   GES.7002: the graph is being backed up                  retryable
├── ListingError              a page of the wrong shape, or a server paging forever   fatal
├── InvalidIdentifier         a path segment refused, before any request (ValueError) fatal
└── DeadlineExceeded          the caller's deadline passed (last failure: __cause__)  fatal
```

`wire_errors` maps wire failures onto this tree (`error_from_response`, `error_from_transport`): the tree itself knows
nothing of HTTP, so a caller that only catches or raises these errors imports no HTTP stack.
"""

from __future__ import annotations

from typing import Any, ClassVar

__all__ = [
    "AgencyRefused",
    "ApiError",
    "AuthError",
    "BackupBusyError",
    "BadRequestError",
    "DeadlineExceeded",
    "Forbidden",
    "GesError",
    "GraphGoneError",
    "InvalidIdentifier",
    "ListingError",
    "NotFoundError",
    "RequestTimeout",
    "ServerError",
    "ThrottledError",
    "TlsError",
    "TransportError",
    "Unauthorized",
]


class GesError(Exception):
    """Base of every GES client failure. `attempts` is set by the client once it gives up."""

    retryable_by_default: ClassVar[bool] = False

    def __init__(
        self,
        message: str = "",
        *,
        operation: str,
        status: int | None = None,
        error_code: str | None = None,
        error_msg: str | None = None,
        request_id: str | None = None,
        attempts: int = 0,
        retryable: bool | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.operation = operation
        self.status = status
        self.error_code = error_code
        self.error_msg = error_msg
        self.request_id = request_id
        self.attempts = attempts
        self.retryable: bool = self.retryable_by_default if retryable is None else retryable

    def __str__(self) -> str:
        # Built on demand so that `attempts`, set after construction, shows.
        parts = [f"{self.operation}: {self.message}" if self.message else self.operation]
        details = []
        if self.request_id:
            details.append(f"request_id={self.request_id}")
        if self.attempts:
            details.append(f"attempts={self.attempts}")
        if details:
            parts.append(f"({', '.join(details)})")
        return " ".join(parts)

    def __reduce__(self) -> tuple[Any, ...]:
        # The keyword-only context would be lost by Exception's default (it rebuilds from `args`): copy and pickle
        # (e.g. to another process) keep every field.
        return _restore, (type(self), self.message, dict(self.__dict__))

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(operation={self.operation!r}, status={self.status!r}, "
            f"error_code={self.error_code!r}, error_msg={self.error_msg!r}, request_id={self.request_id!r}, "
            f"attempts={self.attempts!r}, retryable={self.retryable!r})"
        )


def _restore(cls: type[GesError], message: str, state: dict[str, Any]) -> GesError:
    error = cls.__new__(cls)
    Exception.__init__(error, message)
    error.__dict__.update(state)
    return error


class TransportError(GesError):
    """No HTTP answer: the connection failed, was reset, or the answer could not be read."""

    retryable_by_default = True


class RequestTimeout(TransportError):
    """No complete answer within the request timeout."""


class TlsError(TransportError):
    """The server's certificate failed verification: retrying cannot help, the trust setup must change."""

    retryable_by_default = False


class ApiError(GesError):
    """The server answered with an error. `retry_after_s` is its `Retry-After`, when it sent one."""

    def __init__(self, message: str = "", *, retry_after_s: float | None = None, **context: Any) -> None:
        super().__init__(message, **context)
        self.retry_after_s = retry_after_s


class ThrottledError(ApiError):
    """429: the gateway counts calls per second and this client went over."""

    retryable_by_default = True


class ServerError(ApiError):
    """The server (or the gateway in front of it) failed or timed out."""


class AuthError(ApiError):
    """The credentials were refused."""


class Unauthorized(AuthError):
    """401: bad, expired or revoked credentials, or a signature the gateway rejects (clock skew?)."""


class Forbidden(AuthError):
    """403 or GES.7041: the credentials are fine but lack the permission."""


class AgencyRefused(AuthError):
    """IAM refused to assume an agency (unknown domain or agency, not trusted, the caller's credentials refused):
    `error_code` is `agency_refused`, the message names the agency and quotes IAM."""

    CODE: ClassVar[str] = "agency_refused"


class NotFoundError(ApiError):
    """404 (wrong endpoint or project?) or a GES "does not exist" code. Never proof of a deletion by itself."""


class BadRequestError(ApiError):
    """A 4xx that the same request will get again."""


class GraphGoneError(BadRequestError):
    """GES.7000 / GES.7054: the graph does not exist or is being deleted; that graph's work fails, others go on."""


class BackupBusyError(BadRequestError):
    """GES.7002: the graph is being backed up; later is fine."""

    retryable_by_default = True


class ListingError(GesError):
    """A listing cannot be trusted: a page of the wrong shape, or paging that does not end.

    `reason` is one of `invalid_page`, `endless`, `repeating` (a page of ids already seen before the count).
    """

    def __init__(self, message: str = "", *, reason: str, offset: int | None = None, **context: Any) -> None:
        super().__init__(message, **context)
        self.reason = reason
        self.offset = offset


class InvalidIdentifier(GesError, ValueError):
    """An identifier that cannot be a single, literal URL path segment. Raised before any request."""

    def __init__(self, message: str = "", *, field: str, **context: Any) -> None:
        super().__init__(message, **context)
        self.field = field


class DeadlineExceeded(GesError):
    """The caller's deadline passed (or a backoff wait would end after it) before the work finished.

    The last failure, if any, is `__cause__`.
    """
