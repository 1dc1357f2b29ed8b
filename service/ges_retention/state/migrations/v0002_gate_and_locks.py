"""Version 2: the change gate's baselines and acknowledgements, `run_on_change` digests, learned rates, run locks."""

NAME = "gate_and_locks"

SQL: tuple[str, ...] = (
    """CREATE TABLE baselines (
        policy TEXT NOT NULL,
        endpoint TEXT NOT NULL,
        project_id TEXT NOT NULL,
        definition TEXT NOT NULL,
        overlap TEXT NOT NULL,
        gate_digest TEXT NOT NULL,
        run_id TEXT NOT NULL,
        recorded_at {ts} NOT NULL,
        PRIMARY KEY (policy, endpoint, project_id)
    )""",
    """CREATE TABLE acks (
        policy TEXT NOT NULL,
        endpoint TEXT NOT NULL,
        project_id TEXT NOT NULL,
        digest TEXT NOT NULL,
        acked_by TEXT NOT NULL,
        acked_at {ts} NOT NULL,
        PRIMARY KEY (policy, endpoint, project_id, digest)
    )""",
    """CREATE TABLE change_digests (
        policy TEXT NOT NULL,
        endpoint TEXT NOT NULL,
        project_id TEXT NOT NULL,
        digest TEXT NOT NULL,
        run_id TEXT NOT NULL,
        recorded_at {ts} NOT NULL,
        PRIMARY KEY (policy, endpoint, project_id)
    )""",
    """CREATE TABLE rates (
        endpoint TEXT NOT NULL,
        project_id TEXT NOT NULL,
        rate_per_s {real} NOT NULL,
        learned_at {ts} NOT NULL,
        PRIMARY KEY (endpoint, project_id)
    )""",
    # Who holds a policy's run lock. On SQLite the row only names the holder: the lock itself is an flock, released
    # by the kernel if the process dies, so a row left behind by a dead holder is overwritten by the next taker. The
    # `generation` column is room for PostgreSQL leases (issue 15).
    """CREATE TABLE run_locks (
        policy TEXT PRIMARY KEY,
        holder TEXT NOT NULL,
        acquired_at {ts} NOT NULL,
        generation {bigint} NOT NULL DEFAULT 0
    )""",
)
