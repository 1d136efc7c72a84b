-- one row per statement id accepted from the LRS, with its JSON as first received
-- A chunk's accepted statements not published yet, read from its checks table (named per chunk: the
-- placeholder `checks`, filled in by the loader). Raw is immutable: a statement already here keeps its first
-- copy. `not exists` rather than `on conflict do nothing`: every publisher holds the statement publishing
-- lock (lms/statements.py), and the speculative insertion cost 2.3 times a plain insert.
insert into raw.lms_statement (statement_id, stored_at, occurred_at, statement, source, batch_id, loaded_at)
select
    c.statement_id,
    c.stored_at,
    c.occurred_at,
    c.statement,
    %(source)s,
    %(batch)s,
    now() as loaded_at
from {checks} as c
where
    c.reject_reason is null
    and not exists (
        -- probe_published is false for a chunk expected to be all new: the planner then knows the probe
        -- empty and the primary key alone meets each id (the loader runs the insert again with the probe
        -- if the key refuses one). The flag is in this subquery, not beside it: a `not exists` under an
        -- `or` would no longer be planned as an anti-join.
        select from raw.lms_statement as r
        where %(probe_published)s and r.statement_id = c.statement_id
    )
