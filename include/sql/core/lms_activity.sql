-- one row per accepted learner statement (voiding statements excluded), normalised for analysis
-- Built from raw.lms_statement only, so it can be rebuilt at any time; the loader restricts it
-- to one batch with %(batch_id)s (null = every batch).
with statements as (
    select
        statement_id,
        statement,
        occurred_at,
        stored_at,
        is_voided,
        statement -> 'actor' as actor,
        statement #>> '{verb,id}' as verb_id,
        statement -> 'result' as result
    from raw.lms_statement
    where
        (%(batch_id)s::text is null or batch_id = %(batch_id)s::text)
        and statement #>> '{verb,id}' <> 'http://adlnet.gov/expapi/verbs/voided'
),

identified as (
    select
        *,
        case
            when actor ? 'account'
                then 'account:' || (actor #>> '{account,homePage}') || '|' || (actor #>> '{account,name}')
            when actor ? 'mbox' then 'mbox:' || regexp_replace(actor ->> 'mbox', '^mailto:', '', 'i')
            when actor ? 'mbox_sha1sum' then 'mbox_sha1sum:' || lower(actor ->> 'mbox_sha1sum')
            when actor ? 'openid' then 'openid:' || (actor ->> 'openid')
        end as learner_identifier,
        case
            when actor ? 'account' then 'account'
            when actor ? 'mbox' then 'mbox'
            when actor ? 'mbox_sha1sum' then 'mbox_sha1sum'
            when actor ? 'openid' then 'openid'
        end as learner_identifier_type,
        regexp_match(
            result ->> 'duration',
            '^P(?:([0-9.]+)D)?(?:T(?:([0-9.]+)H)?(?:([0-9.]+)M)?(?:([0-9.]+)S)?)?$'
        ) as duration_parts,
        case
            when jsonb_typeof(result #> '{score,scaled}') = 'number'
                then greatest((result #>> '{score,scaled}')::numeric, 0)
            when
                jsonb_typeof(result #> '{score,raw}') = 'number'
                and jsonb_typeof(result #> '{score,min}') = 'number'
                and jsonb_typeof(result #> '{score,max}') = 'number'
                and (result #>> '{score,max}')::numeric > (result #>> '{score,min}')::numeric
                then
                    ((result #>> '{score,raw}')::numeric - (result #>> '{score,min}')::numeric)
                    / ((result #>> '{score,max}')::numeric - (result #>> '{score,min}')::numeric)
        end as score_normalized
    from statements
),

final as (
    select
        statement_id,
        learner_identifier,
        learner_identifier_type,
        verb_id,
        occurred_at,
        stored_at,
        is_voided,
        coalesce(%(verb_event_types)s::jsonb ->> verb_id, 'other') as event_type,
        regexp_replace(statement #>> '{object,id}', '^.*/courses/', '') as course_id,
        coalesce(
            statement #>> '{object,definition,name,en-US}',
            statement #>> '{object,definition,name,en}',
            statement #>> '{object,id}'
        ) as course_name,
        round(score_normalized, 6) as score_normalized,
        case when jsonb_typeof(result -> 'success') = 'boolean' then (result ->> 'success')::boolean end as is_success,
        case
            when jsonb_typeof(result -> 'completion') = 'boolean' then (result ->> 'completion')::boolean
        end as is_completion,
        round(
            coalesce(duration_parts[1]::numeric, 0) * 86400
            + coalesce(duration_parts[2]::numeric, 0) * 3600
            + coalesce(duration_parts[3]::numeric, 0) * 60
            + coalesce(duration_parts[4]::numeric, 0)
        )::integer as duration_seconds,
        coalesce((statement ->> 'timestamp') !~ '(Z|z|[+-][0-9]{2}(:?[0-9]{2})?)$', false) as is_timestamp_assumed_utc
    from identified
    where learner_identifier is not null and occurred_at is not null
)

select * from final
