"""Version 5: the index on (scope, state) of `deletions` is dropped (issue 17).

Every deletion inserts a row and then changes its state, and each index is one more B-tree to write at both steps:
this one cost about a sixth of the journal's CPU per deletion. The queries that read rows by state read only
`pending` and `deleting` rows, which the partial unique index `deletions_active` (scope and backup id, `pending` and
`deleting` rows only) already finds: they name its condition (`state IN ('pending', 'deleting')`) so that both
backends use it. `why` reads by backup id and pruning by run id, through their own indexes.
"""

NAME = "active_index_only"

SQL: tuple[str, ...] = ("DROP INDEX deletions_scope_state",)
