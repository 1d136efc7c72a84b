-- one row per voided statement, with the voiding statement that voided it and the batch that applied it
-- The voids where either side is in a chunk's checks table (named per chunk: the placeholder `checks`, filled
-- in by the loader): a void may arrive before or after its target. The chunk's own voids come from its checks
-- table, earlier voids of its statements through the partial index on voiding statements (migration 0008), so
-- the cost does not grow with the raw history: the verb is a literal, not a parameter, for that index to
-- match.
-- One statement marks the targets voided in raw.lms_statement and core.lms_activity as it records them here:
-- the rows recorded are those the update marked (its returning), which a separate insert could not name.
-- Braces are doubled: the loader fills in the placeholder with psycopg's sql.SQL(...).format(...).
with voids as (
    select
        statement_id as voiding_id,
        object_id as target_id,
        stored_at
    from {checks}
    where
        reject_reason is null
        and verb_id = 'http://adlnet.gov/expapi/verbs/voided'
        and object_type = 'StatementRef'
    union all
    select
        v.statement_id,
        v.statement #>> '{{object,id}}' as target_id,
        v.stored_at
    from raw.lms_statement as v
    where
        v.statement #>> '{{verb,id}}' = 'http://adlnet.gov/expapi/verbs/voided'
        and v.statement #>> '{{object,objectType}}' = 'StatementRef'
        and v.statement #>> '{{object,id}}' in (
            select chunk.statement_id from {checks} as chunk
            where chunk.reject_reason is null
        )
),

marked as (
    update raw.lms_statement as t
    set is_voided = true, voided_by_statement_id = voids.voiding_id
    from voids
    where
        t.statement_id = voids.target_id
        and not t.is_voided
        and t.statement #>> '{{verb,id}}' <> 'http://adlnet.gov/expapi/verbs/voided'
    returning t.statement_id, t.occurred_at, voids.voiding_id, voids.stored_at
),

recorded as (
    insert into audit.lms_void_applied
    (voided_statement_id, voiding_statement_id, voided_occurred_at, void_stored_at, batch_id)
    select
        statement_id,
        voiding_id,
        occurred_at,
        stored_at,
        %(batch)s
    from marked
    on conflict (voided_statement_id) do nothing
)

update core.lms_activity as a set is_voided = true
from marked
where a.statement_id = marked.statement_id
