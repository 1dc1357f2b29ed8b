"""The GES v2 API client: knows backups and graphs, nothing of policies.

- `client`: `GesClient` and its per-project view `ProjectClient`: the GES v2 operations (list, delete) over a transport.
- `transport`: `ClientConfig`, `open_session`, `Transport`: session, pacing, retries with backoff, observer, clock,
  deadlines.
- `paging`: offset paging, de-duplication by id, and the trust facts of a listing (`BackupListing`, `GraphListing`).
- `auth`: `AuthProvider` and its three schemes (`TokenAuth`, `PasswordAuth`, `AkSkAuth`), `Secret`.
- `signing`: the pure `SDK-HMAC-SHA256` signer over one `SignedRequest`, shared with the emulator.
- `errors`: the `GesError` hierarchy and the mapping of wire failures onto it.
- `pacing`: `RatePacer` or `AdaptivePacer` (per endpoint and project), `Pacing` (plus the in-flight cap), `Backoff`;
  `rate_control`: the adaptive rate's pure control law.
- `observe`: `RequestObserver`, through which the runner logs and counts.

Nothing is re-exported here, so that importing `ges_retention.ges.signing` (the emulator does) stays light.
"""
