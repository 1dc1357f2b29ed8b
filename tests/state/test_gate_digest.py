"""The change gate's digests: canonical JSON, sorted overlap, the baseline's digest (or null) included."""

from __future__ import annotations

import hashlib

import pytest

from ges_retention.state.gate_digest import canonical_json, definition_digest, gate_digest


def test_canonical_json_sorts_keys_and_has_no_whitespace() -> None:
    assert canonical_json({"b": [1, {"d": 2, "c": "é"}], "a": None}) == '{"a":null,"b":[1,{"c":"é","d":2}]}'
    with pytest.raises(ValueError):
        canonical_json({"x": float("nan")})


def test_definition_digest_is_sha256_of_the_canonical_text() -> None:
    definition = {"keep": {"daily": 30}, "project_id": "p1"}
    expected = hashlib.sha256(b'{"keep":{"daily":30},"project_id":"p1"}').hexdigest()
    assert definition_digest(definition) == expected
    assert definition_digest({"project_id": "p1", "keep": {"daily": 30}}) == expected  # key order is irrelevant


def test_gate_digest_covers_definition_overlap_and_baseline() -> None:
    definition = {"keep": {"daily": 3}}
    text = '{"baseline":null,"definition":{"keep":{"daily":3}},"overlap":["aa","bb"]}'
    assert gate_digest(definition, ["bb", "aa"], None) == hashlib.sha256(text.encode()).hexdigest()
    base = gate_digest(definition, ["aa", "bb"], None)
    assert gate_digest(definition, ["aa"], None) != base  # a removed neighbour makes an old ack stale
    assert gate_digest(definition, ["aa", "bb"], "f" * 64) != base  # so does another baseline (or a lost state)
    assert gate_digest({"keep": {"daily": 4}}, ["aa", "bb"], None) != base
