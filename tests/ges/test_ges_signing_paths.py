"""The canonical URI of the signature: the fast path for plain paths writes what the general rule writes."""

from __future__ import annotations

from urllib.parse import quote, unquote

from hypothesis import given
from hypothesis import strategies as st

from ges_retention.ges.signing import SignedRequest, _canonical_uri, canonical_request


def _general_rule(path: str) -> str:
    """The SDK's rule, as the signer wrote it for every path before the fast path."""
    uri = "/".join(quote(segment, safe="~") for segment in unquote(path).split("/"))
    return uri if uri.endswith("/") else uri + "/"


_PATH_CHARS = st.sampled_from([*"abcXYZ019_.~-/%20 é+:@?&=", "%2F", "%41", "%zz"])


@given(st.lists(_PATH_CHARS, max_size=30).map("".join))
def test_canonical_uri_is_the_general_rule_for_any_path(path: str) -> None:
    assert _canonical_uri(path) == _general_rule(path)


def test_a_ges_delete_path_is_its_own_canonical_uri_and_others_are_quoted() -> None:
    plain = "/v2/0123abcd/graphs/9f3c-2e1a_x/backups/b-1.2~3"
    assert _canonical_uri(plain) == plain + "/"
    assert _canonical_uri("/v2/p/graphs/a b/backups/%41") == "/v2/p/graphs/a%20b/backups/A/"


def test_with_headers_keeps_every_other_field() -> None:
    request = SignedRequest("DELETE", "/v2/p/x", (("a", "1"),), {"Host": "h"}, b"body", "h:1")
    changed = request.with_headers({"Host": "h", "X-Sdk-Date": "20261203T000000Z"})
    assert (changed.method, changed.path, changed.query, changed.body, changed.host) == (
        "DELETE",
        "/v2/p/x",
        (("a", "1"),),
        b"body",
        "h:1",
    )
    assert dict(changed.headers) == {"Host": "h", "X-Sdk-Date": "20261203T000000Z"}
    assert canonical_request(changed)[1] == ["host", "x-sdk-date"]
