"""Version 1: runs, planned deletions and holds."""

NAME = "journal"

SQL: tuple[str, ...] = (
    """CREATE TABLE runs (
        run_id TEXT PRIMARY KEY,
        trigger TEXT NOT NULL,
        host TEXT NOT NULL,
        started_at {ts} NOT NULL,
        ended_at {ts},
        outcome TEXT,
        counts TEXT,
        holder TEXT,
        lease_generation {bigint}
    )""",
    # Room for leases (issue 15): a run records the holder and lease generation it ran under, so that a later run can
    # tell that an unfinished run's generation was superseded.
    """CREATE TABLE run_policies (
        run_id TEXT NOT NULL,
        policy TEXT NOT NULL,
        PRIMARY KEY (run_id, policy)
    )""",
    "CREATE INDEX run_policies_policy ON run_policies (policy)",
    "CREATE INDEX runs_started ON runs (started_at)",
    """CREATE TABLE deletions (
        id {serial},
        policy TEXT NOT NULL,
        endpoint TEXT NOT NULL,
        project_id TEXT NOT NULL,
        backup_id TEXT NOT NULL,
        state TEXT NOT NULL,
        reasons TEXT NOT NULL,
        run_id TEXT NOT NULL,
        planned_run_id TEXT NOT NULL,
        backup_name TEXT NOT NULL,
        graph_id TEXT NOT NULL,
        graph_name TEXT NOT NULL,
        backup_method TEXT NOT NULL,
        backup_started_at {ts},
        size_mb {real},
        planned_at {ts} NOT NULL,
        pending_since {ts},
        updated_at {ts} NOT NULL,
        finished_at {ts},
        request_id TEXT,
        attempts {bigint} NOT NULL DEFAULT 0,
        error TEXT,
        lease_generation {bigint}
    )""",
    # At most one row in play per key: the write-ahead intent and the pending clock are unambiguous.
    """CREATE UNIQUE INDEX deletions_active ON deletions (policy, endpoint, project_id, backup_id)
        WHERE state IN ('pending', 'deleting')""",
    "CREATE INDEX deletions_backup ON deletions (backup_id)",
    "CREATE INDEX deletions_run ON deletions (run_id)",
    "CREATE INDEX deletions_scope_state ON deletions (policy, endpoint, project_id, state)",
    """CREATE TABLE holds (
        backup_id TEXT PRIMARY KEY,
        reason TEXT NOT NULL,
        until {ts},
        placed_at {ts} NOT NULL,
        placed_by TEXT NOT NULL
    )""",
)
