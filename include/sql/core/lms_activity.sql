-- one row per accepted learner statement (voiding statements excluded), normalised for analysis
-- Rows come from a checked extraction chunk (columns as include/sql/staging/lms_statement_checks.sql defines
-- them, computed while fetching), bound to the name checked_batch by the loader: the normalised columns come
-- from the same pass over the JSON as the gate's checks. To rebuild from raw.lms_statement, run that definition
-- over its statements (bound to received_statements).
with checked as (
    select * from checked_batch
),

final as (
    select
        statement_id,
        learner_identifier,
        learner_identifier_type,
        event_type,
        verb_id,
        course_id,
        course_name,
        score_normalized,
        is_success,
        is_completion,
        duration_seconds,
        occurred_at,
        is_timestamp_assumed_utc,
        stored_at,
        false as is_voided
    from checked
    where
        reject_reason is null
        and verb_id <> 'http://adlnet.gov/expapi/verbs/voided'
        and learner_identifier is not null
        and occurred_at is not null
)

select * from final
