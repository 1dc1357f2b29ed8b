"""Version 4: why a planned deletion was closed without a DELETE (`cancelled`, `gone`), kept apart from the planner's
reasons: before it, cancelling a row replaced its reasons (`expired` became `held: ...`), so `why` lost why the
backup had been planned. Rows closed before this version keep the replaced reasons and no `closed_reasons`."""

NAME = "closed_reasons"

SQL: tuple[str, ...] = ("ALTER TABLE deletions ADD COLUMN closed_reasons TEXT",)
