"""A policy's effective definition: the policy as it acts, as canonical JSON, and its sha256 digest.

What `run_on_change` compares between two loads of the file, and what the change gate's baseline holds.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from ges_retention.policy import Policy

__all__ = ["canonical_definition", "definition_digest", "definition_document", "effective_definition"]


def effective_definition(policy: Policy) -> str:
    """The policy as it acts: every default filled in, `name` and `safety.ack` left out, as canonical JSON.

    Sorted keys and no whitespace, so a comment, a reordering of the file, a key moved into `defaults` or an edit of
    another policy gives the same text, and any change of what this policy does gives another.
    """
    return canonical_definition(policy.model_dump(mode="json"))


def canonical_definition(document: dict[str, Any]) -> str:
    """A dumped policy as its effective definition's text (see `effective_definition`); `document` is not changed."""
    document = {key: value for key, value in document.items() if key != "name"}
    if document.get("agency") is None:
        # No agency is the only meaning a file without the key ever had: its digest stays what it was.
        document.pop("agency", None)
    safety = document.get("safety")
    if isinstance(safety, dict):
        # An acknowledgement approves a definition; it is not part of it.
        document["safety"] = {key: value for key, value in safety.items() if key != "ack"}
    if isinstance(document.get("schedule"), str):
        document["schedule"] = " ".join(document["schedule"].split())  # spacing inside the cron changes nothing
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def definition_document(policy: Policy) -> dict[str, Any]:
    """The effective definition as a JSON value (what the change gate's digest and a baseline hold)."""
    document: dict[str, Any] = json.loads(effective_definition(policy))
    return document


def definition_digest(policy: Policy) -> str:
    """The sha256 (hex) of the policy's effective definition: what `run_on_change` and the change gate compare."""
    return hashlib.sha256(effective_definition(policy).encode("utf-8")).hexdigest()
