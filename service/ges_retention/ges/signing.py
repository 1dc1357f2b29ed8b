"""SDK-HMAC-SHA256 request signing, exactly as the official Huawei Cloud SDK (`huaweicloudsdkcore`) does it.

Pure functions over one `SignedRequest` (method, host, path, query, headers, body): the client signs with them and the
emulator verifies with them; a referee test compares the result with the official SDK's signer so neither can drift.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from urllib.parse import quote, unquote

__all__ = [
    "ALGORITHM",
    "DATE_FORMAT",
    "EMPTY_BODY_SHA256",
    "SignedRequest",
    "authorization_header",
    "canonical_request",
    "format_sdk_date",
    "parse_authorization",
    "signature",
    "signed_header_names",
]

ALGORITHM = "SDK-HMAC-SHA256"
DATE_FORMAT = "%Y%m%dT%H%M%SZ"
EMPTY_BODY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


@dataclass(frozen=True, slots=True)
class SignedRequest:
    """What a signature covers, as one value: the client signs it, the emulator verifies it.

    `path` is the raw (percent-encoded) path as sent; `query` the decoded (name, value) pairs in the order sent;
    `host` is `host[:port]` as the `Host` header carries it (the signer adds that header; a verifier reads it from the
    signed headers). `headers` is read, never changed: `with_headers` makes a new value.
    """

    method: str
    path: str
    query: tuple[tuple[str, str], ...] = ()
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""
    host: str = ""

    @classmethod
    def of(
        cls,
        method: str,
        path: str,
        query: Iterable[tuple[str, str]] = (),
        headers: Mapping[str, str] | None = None,
        body: bytes = b"",
        *,
        host: str = "",
    ) -> SignedRequest:
        return cls(method, path, tuple(query), {} if headers is None else headers, body, host)

    def with_headers(self, headers: Mapping[str, str]) -> SignedRequest:
        """The same request with `headers` instead of its own."""
        # Not `dataclasses.replace` (it re-reads the fields each call): once per signed request.
        return SignedRequest(self.method, self.path, self.query, headers, self.body, self.host)


def format_sdk_date(when: datetime) -> str:
    """`X-Sdk-Date` for an aware (or UTC-naive) datetime."""
    return when.strftime(DATE_FORMAT)


def signed_header_names(headers: Mapping[str, str]) -> list[str]:
    """Every header name lower-cased, names containing `_` skipped, sorted."""
    return sorted(name.lower() for name in headers if "_" not in name)


# A path of these characters only is its own canonical form: `unquote` leaves it (no `%`) and `quote(safe="~")` leaves
# every segment (unreserved characters). GES paths (ids, project ids) are such paths: spared a quote per segment.
_PLAIN_PATH = re.compile(r"[A-Za-z0-9_.~/-]*")


def _canonical_uri(path: str) -> str:
    if _PLAIN_PATH.fullmatch(path):
        uri = path
    else:
        uri = "/".join(quote(segment, safe="~") for segment in unquote(path).split("/"))
    return uri if uri.endswith("/") else uri + "/"


def _canonical_query(query: Iterable[tuple[str, str]]) -> str:
    return "&".join(f"{quote(k, safe='~')}={quote(v, safe='~')}" for k, v in sorted(query))


def canonical_request(request: SignedRequest) -> tuple[str, list[str]]:
    """The canonical request text and the signed header names (every header of `request`), in the SDK's order."""
    signed = signed_header_names(request.headers)
    lowered = {name.lower(): str(value).strip() for name, value in request.headers.items()}
    header_block = "".join(f"{name}:{lowered[name]}\n" for name in signed)
    body = request.body
    payload_hash = hashlib.sha256(body).hexdigest() if body else EMPTY_BODY_SHA256
    text = "\n".join(
        [
            request.method.upper(),
            _canonical_uri(request.path),
            _canonical_query(request.query),
            header_block,
            ";".join(signed),
            payload_hash,
        ]
    )
    return text, signed


def signature(sk: str, sdk_date: str, canonical: str) -> str:
    """HMAC-SHA256 (keyed with SK) over the string to sign, hex."""
    string_to_sign = f"{ALGORITHM}\n{sdk_date}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
    return hmac.new(sk.encode(), string_to_sign.encode(), hashlib.sha256).hexdigest()


def authorization_header(*, ak: str, sk: str, request: SignedRequest) -> str:
    """The `Authorization` value for a request whose headers already hold `X-Sdk-Date` and `Host`."""
    sdk_date = next((v for k, v in request.headers.items() if k.lower() == "x-sdk-date"), None)
    if sdk_date is None:
        raise ValueError("X-Sdk-Date header is required before signing")
    canonical, signed = canonical_request(request)
    sig = signature(sk, sdk_date, canonical)
    return f"{ALGORITHM} Access={ak}, SignedHeaders={';'.join(signed)}, Signature={sig}"


def parse_authorization(value: str) -> tuple[str, list[str], str] | None:
    """(access key, signed header names, signature) of an `Authorization` value, or None if it is not ours."""
    prefix = ALGORITHM + " "
    if value[: len(prefix)].upper() != prefix:  # RFC 7235: the scheme name is case-insensitive
        return None
    fields: dict[str, str] = {}
    for part in value[len(prefix) :].split(","):
        key, sep, val = part.strip().partition("=")
        if not sep:
            return None
        fields[key] = val
    try:
        return fields["Access"], fields["SignedHeaders"].split(";"), fields["Signature"]
    except KeyError:
        return None
