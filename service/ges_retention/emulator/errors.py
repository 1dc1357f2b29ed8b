"""The error answers of the emulated cloud, with the codes and messages of ges-api.md and the API gateway.

GES itself answers `{"error_code", "error_msg"}`; the API gateway (codes `APIGW.*`) adds `"request_id"`. Every
response also carries the request id in the `X-Request-Id` header (the middleware sets it). IAM answers in
Keystone's shape, `{"error": {"code", "message", "title"}}`.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "MSG_BACKUP_NOT_FOUND",
    "MSG_GRAPH_BACKING_UP",
    "MSG_GRAPH_NOT_FOUND",
    "MSG_GRAPH_NOT_RUNNING",
    "ApiError",
    "auth_failed",
    "bad_parameter",
    "forbidden",
    "iam_error",
    "throttled",
    "token_expired",
    "unknown_api",
]

MSG_BACKUP_NOT_FOUND = "The graph backup does not exist or has been deleted."
MSG_GRAPH_NOT_FOUND = "The graph does not exist or has been deleted."
MSG_GRAPH_NOT_RUNNING = "The graph is not running."
MSG_GRAPH_BACKING_UP = "The graph is being backed up."


class ApiError(Exception):
    """An error answer. Raised anywhere in a handler; the middleware turns it into the JSON response."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        gateway: bool = False,
        body: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.gateway = gateway  # the gateway answers with a request_id in the body too
        self.body = body  # an answer of another shape (IAM), sent as is

    def to_json(self, request_id: str) -> dict[str, Any]:
        if self.body is not None:
            return self.body
        body: dict[str, Any] = {"error_code": self.code, "error_msg": self.message}
        if self.gateway:
            body["request_id"] = request_id
        return body


def bad_parameter(detail: str) -> ApiError:
    # The cloud says only "Incorrect parameter."; the detail after it is the emulator's help for test authors.
    return ApiError(400, "GES.0001", f"Incorrect parameter. {detail}")


def auth_failed(detail: str) -> ApiError:
    return ApiError(401, "APIGW.0301", f"Incorrect IAM authentication information: {detail}", gateway=True)


def token_expired() -> ApiError:
    return ApiError(401, "APIGW.0307", "The token must be updated.", gateway=True)


def forbidden(detail: str) -> ApiError:
    return ApiError(403, "APIGW.0302", f"The IAM user is not authorized to access the API: {detail}", gateway=True)


def throttled(limit_per_s: int) -> ApiError:
    # The gateway words its limit per minute; the emulator enforces the same average per sliding second.
    limit = limit_per_s * 60
    message = f"The throttling threshold has been reached: policy user over ratelimit,limit:{limit},time:1 minute"
    return ApiError(429, "APIGW.0308", message, gateway=True)


def unknown_api() -> ApiError:
    return ApiError(
        404, "APIGW.0101", "The API does not exist or has not been published in the environment.", gateway=True
    )


def iam_error(status: int, title: str, message: str) -> ApiError:
    return ApiError(
        status,
        f"IAM.{status}",
        message,
        body={"error": {"code": status, "message": message, "title": title}},
    )
