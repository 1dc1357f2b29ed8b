"""Which credentials each project is called with when policies name an `agency` (another account).

- `check_agencies(policies, settings)`: before any request, exit 2 (`SettingsError`) when a policy has an agency and
  the credentials are a static token (it cannot assume), or when policies of one (endpoint, project_id) name
  different agencies (that project's listing serves all of them, with one set of credentials).
- `Agencies`: the process's agency credentials. `bind(endpoint, project_id, agency)` records what a policy says (the
  runner asks every policy's endpoint before it lists, and the service binds there); `auth(endpoint, project_id)` is
  the project's `AgencyAuth`, or None when it acts with the process's own credentials. One `AssumeRole` (the cache
  of temporary credentials) per (IAM endpoint, domain, agency), shared by every project of that account.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from urllib.parse import urlsplit

import aiohttp

from ges_retention.ges.agency import AgencyAuth, AssumeRole
from ges_retention.ges.auth import AkSkAuth, AuthProvider, PasswordAuth
from ges_retention.logs import forget_secrets, register_secrets
from ges_retention.policy import Agency, Policy
from ges_retention.policy_loading import agency_conflicts
from ges_retention.settings import (
    AkSkCredentials,
    Credentials,
    PasswordCredentials,
    Settings,
    SettingsError,
    TokenCredentials,
)

__all__ = ["Agencies", "check_agencies", "iam_endpoint_for"]


def check_agencies(policies: Sequence[Policy], settings: Settings, endpoint_of: Callable[[Policy], str]) -> None:
    """Raise `SettingsError` (exit 2, before any request) when the policies' agencies cannot be honoured.

    `endpoint_of` is the endpoint a policy calls (settings applied)."""
    with_agency = [p for p in policies if p.agency is not None]
    if with_agency and isinstance(settings.credentials(), TokenCredentials):
        names = ", ".join(repr(p.name) for p in with_agency[:5]) + (", ..." if len(with_agency) > 5 else "")
        raise SettingsError(
            f"policy {names} names an agency, but the credentials are a static token (GES_RETENTION_TOKEN), "
            "which cannot assume an agency: set GES_RETENTION_AK and GES_RETENTION_SK, or an IAM password login"
        )
    problems = agency_conflicts(policies, endpoint_of)
    if problems:
        raise SettingsError(problems[0].message)


def iam_endpoint_for(endpoint: str) -> str:
    """https://ges.{region}.myhuaweicloud.com -> https://iam.{region}.myhuaweicloud.com (else the global IAM)."""
    host = urlsplit(endpoint).hostname or ""
    if host.startswith("ges."):
        return f"https://iam.{host[4:]}"
    return "https://iam.myhuaweicloud.com"


def _redact(new: Sequence[str], retired: Sequence[str]) -> None:
    register_secrets(new)
    forget_secrets(retired)


class Agencies:
    """The agency bindings of the loaded policies and the cached temporary credentials of each agency."""

    __slots__ = ("_bound", "_callers", "_roles", "credentials", "session", "settings")

    def __init__(self, credentials: Credentials, settings: Settings, session: aiohttp.ClientSession) -> None:
        self.credentials = credentials
        self.settings = settings
        self.session = session
        self._bound: dict[tuple[str, str], Agency | None] = {}
        self._callers: dict[str, AuthProvider] = {}
        self._roles: dict[tuple[str, str, str], AssumeRole] = {}

    def bind(self, endpoint: str, project_id: str, agency: Agency | None) -> None:
        self._bound[(endpoint, project_id)] = agency

    def agency(self, endpoint: str, project_id: str) -> Agency | None:
        return self._bound.get((endpoint, project_id))

    def auth(self, endpoint: str, project_id: str) -> AgencyAuth | None:
        """A new `AgencyAuth` for the project's bound agency (None: no agency), over the shared `AssumeRole`."""
        agency = self.agency(endpoint, project_id)
        if agency is None:
            return None
        iam = self.settings.iam_endpoint or iam_endpoint_for(endpoint)
        key = (iam, agency.domain, agency.name)
        role = self._roles.get(key)
        if role is None:
            role = self._roles[key] = AssumeRole(
                iam,
                agency.domain,
                agency.name,
                self._caller(iam),
                session=self.session,
                timeout_s=self.settings.request_timeout_s,
                on_secret=_redact,
            )
        return AgencyAuth(role, project_id)

    def _caller(self, iam: str) -> AuthProvider:
        """This process's own identity towards IAM: AK/SK signing (no project) or a domain-scoped password login."""
        caller = self._callers.get(iam)
        if caller is not None:
            return caller
        credentials = self.credentials
        if isinstance(credentials, AkSkCredentials):
            caller = AkSkAuth(credentials.ak, credentials.sk, None, credentials.security_token)
        elif isinstance(credentials, PasswordCredentials):
            caller = PasswordAuth(
                credentials.iam_endpoint or iam,
                credentials.domain,
                credentials.user,
                credentials.password,
                None,
                session=self.session,
                timeout_s=self.settings.request_timeout_s,
            )
        else:  # refused by check_agencies before any request; a bug if it gets here
            raise SettingsError("a static token cannot assume an agency")
        self._callers[iam] = caller
        return caller
