-- one row per rejected payload (its sha256) per reject reason, the first time it was rejected
-- A chunk's rejects, read from its checks table (named per chunk: the placeholder `checks`, filled in by the
-- loader). A statement refused for its size or depth (statement_checks.REFUSED_REASONS) is kept as the
-- excerpt its stand-in carries, with the sha256 and the size of what was received
-- (statement_checks.refused_row). accepted_in_batch is set later, by the chunk that publishes despite them
-- (lms/statements.py).
insert into raw.lms_statement_rejected (
    payload_sha256, reason, statement_id, raw, source, batch_id, rejected_at, payload_bytes, is_raw_truncated
)
select
    case
        when rejected.is_refused then rejected.refused ->> 'sha256'
        else encode(sha256(convert_to(rejected.statement::text, 'UTF8')), 'hex')
    end as payload_sha256,
    rejected.reject_reason as reason,
    nullif(rejected.statement ->> 'id', '') as statement_id,
    case when rejected.is_refused then rejected.refused ->> 'excerpt' else rejected.statement::text end as raw,
    %(source)s,
    %(batch)s,
    now() as rejected_at,
    case
        when rejected.is_refused then (rejected.refused ->> 'bytes')::bigint
        else octet_length(rejected.statement::text)
    end as payload_bytes,
    rejected.is_refused and (rejected.refused ->> 'bytes')::bigint > octet_length(rejected.refused ->> 'excerpt')
        as is_raw_truncated
from (
    select
        statement,
        reject_reason,
        reject_reason = any(%(refused)s) as is_refused,
        statement -> 'refused_statement' as refused
    from {checks}
    where reject_reason is not null
) as rejected
on conflict (payload_sha256, reason) do nothing
