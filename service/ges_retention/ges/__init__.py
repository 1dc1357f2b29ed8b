"""The GES v2 API client: knows backups and graphs, nothing of policies.

- `client`: `ClientConfig`, `open_session`, `GesClient` and its per-project view `ProjectClient` (paging, deletes,
  retries, deadlines).
- `auth`: `AuthProvider` and its three schemes (`TokenAuth`, `PasswordAuth`, `AkSkAuth`), `Secret`.
- `signing`: the pure `SDK-HMAC-SHA256` signer, shared with the emulator.
- `errors`: the `GesError` hierarchy and the mapping of wire failures onto it.
- `pacing`: `RatePacer` (per endpoint and project), `Pacing` (plus the in-flight cap), `Backoff`.
- `observe`: `RequestObserver`, through which the runner logs and counts.

Nothing is re-exported here, so that importing `ges_retention.ges.signing` (the emulator does) stays light.
"""
