"""Version 3: per-policy leases and daemon heartbeats (several replicas on PostgreSQL, `state/leases.py`).

Created on both backends so that one schema version means one set of tables; only PostgreSQL uses them (a SQLite
state has one daemon, and its run lock is an flock).
"""

NAME = "leases"

SQL: tuple[str, ...] = (
    # One row per policy ever leased. Free when `expires_at` (the database clock) has passed; a release sets it to the
    # epoch. `run_id` names the run its holder has in progress (NULL when idle): a taker that finds it set on an
    # expired or handed-over lease runs the policy at once (trigger `takeover`).
    """CREATE TABLE leases (
        policy TEXT PRIMARY KEY,
        holder TEXT NOT NULL,
        generation {bigint} NOT NULL,
        acquired_at {ts} NOT NULL,
        renewed_at {ts} NOT NULL,
        expires_at {ts} NOT NULL,
        run_id TEXT
    )""",
    # One row per daemon process (`holder` = host:pid:random), live while `expires_at` has not passed.
    """CREATE TABLE daemons (
        holder TEXT PRIMARY KEY,
        started_at {ts} NOT NULL,
        heartbeat_at {ts} NOT NULL,
        expires_at {ts} NOT NULL
    )""",
)
