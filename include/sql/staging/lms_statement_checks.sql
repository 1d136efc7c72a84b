-- one row per statement received in an extraction chunk, with what the gate checks and its normalised columns
-- The definition of the checks: it names the columns of a chunk's checks table and says what each means for
-- any JSON at all. The loader computes them while fetching (turnover_signals.lms.statement_checks, about 60 µs
-- a statement cheaper than this query) for every statement whose fields have the usual JSON types, and runs
-- this query only over the rest (an actor that is an array, an id that is missing or a number, ...), bound to
-- the name received_statements (received_order, statement jsonb). tests/integration/test_lms_statement_checks.py
-- compares the two column by column. Repeats of a statement id are kept here; the loader keeps the first copy.
-- A statement beyond lms.max_statement_bytes or lms.max_statement_depth never reaches either: the client refuses
-- it unparsed and the loader writes a stand-in row rejected with that reason (statement_checks.refused_row).
-- Times and the duration are parsed by functions in FROM: evaluated once per row, whereas an expression in
-- a step's select list is evaluated again at every reference once PostgreSQL inlines the step.
with received as (
    select
        statement,
        received_order
    from received_statements
),

extracted as (
    select
        received_order,
        statement,
        jsonb_typeof(statement) = 'object' as is_object,
        statement ->> 'id' as declared_id,
        statement #>> '{verb,id}' as verb_id,
        statement -> 'actor' as actor,
        statement -> 'object' as activity,
        statement -> 'result' as result,
        statement -> 'result' -> 'score' as score,
        -- the experience time; an LRS sets timestamp = stored when the statement carried none
        coalesce(nullif(statement ->> 'timestamp', ''), statement ->> 'stored') as occurred_text
    from received
),

timed as (
    select
        extracted.*,
        stored_time.stored_at,
        occurred_time.occurred_at,
        coalesce(iso_duration.duration_parts[1]::numeric, 0) * 86400
        + coalesce(iso_duration.duration_parts[2]::numeric, 0) * 3600
        + coalesce(iso_duration.duration_parts[3]::numeric, 0) * 60
        + coalesce(iso_duration.duration_parts[4]::numeric, 0) as duration_total,
        coalesce(extracted.actor ? 'mbox', false) as has_mbox,
        coalesce(extracted.actor ? 'mbox_sha1sum', false) as has_mbox_sha1sum,
        coalesce(extracted.actor ? 'openid', false) as has_openid,
        coalesce(extracted.actor ? 'account', false) as has_account,
        -- a time without a zone is read as UTC and flagged, not dropped (xAPI timestamps SHOULD carry one)
        occurred_time.occurred_at is not null
        and btrim(extracted.occurred_text) !~ '[T ][0-9:.,]+([Zz]|[+-][0-9]{2}(:?[0-9]{2})?)$'
            as is_timestamp_assumed_utc,
        case
            when jsonb_typeof(extracted.score -> 'scaled') = 'number' then (extracted.score ->> 'scaled')::numeric
        end as score_scaled,
        case
            when jsonb_typeof(extracted.score -> 'raw') = 'number' then (extracted.score ->> 'raw')::numeric
        end as score_raw,
        case
            when jsonb_typeof(extracted.score -> 'min') = 'number' then (extracted.score ->> 'min')::numeric
        end as score_min,
        case
            when jsonb_typeof(extracted.score -> 'max') = 'number' then (extracted.score ->> 'max')::numeric
        end as score_max
    from extracted
    cross join lateral core.parse_xapi_timestamp_text(extracted.statement ->> 'stored', true) as stored_time (stored_at)
    cross join lateral core.parse_xapi_timestamp_text(extracted.occurred_text, false) as occurred_time (occurred_at)
    -- each part a number as numeric reads it ("1.2.3" is none: the duration is then not of the pattern)
    cross join lateral regexp_match(
        extracted.result ->> 'duration',
        replace('^P(?:(N)D)?(?:T(?:(N)H)?(?:(N)M)?(?:(N)S)?)?$', 'N', '[0-9]+\.?[0-9]*|\.[0-9]+')
    ) as iso_duration (duration_parts)
),

checked as (
    select
        received_order,
        declared_id,
        statement,
        verb_id,
        occurred_at,
        stored_at,
        is_timestamp_assumed_utc,
        is_object,
        score_scaled,
        score_raw,
        score_min,
        score_max,
        coalesce(
            nullif(declared_id, ''), 'payload:' || encode(sha256(convert_to(statement::text, 'UTF8')), 'hex')
        ) as statement_id,
        activity ->> 'objectType' as object_type,
        activity ->> 'id' as object_id,
        coalesce(declared_id, '') ~ '^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$'
            as is_id_uuid,
        coalesce(verb_id, '') ~ '^[A-Za-z][A-Za-z0-9+.-]*:[^\s]+$' as is_verb_iri,
        has_mbox::integer + has_mbox_sha1sum::integer + has_openid::integer + has_account::integer
            as actor_identifier_count,
        coalesce(occurred_at > %(future_limit)s::timestamptz, false) as is_in_future,
        -- stored is the LRS's clock: ahead of ours beyond the tolerance, it would carry the watermark with it
        coalesce(stored_at > %(future_limit)s::timestamptz, false) as is_stored_in_future,
        case
            when occurred_at is null then 'timestamp is not an ISO 8601 time'
            when stored_at is null then 'stored is missing or not an ISO 8601 time with a zone'
        end as timestamp_problem,
        case
            when has_account then 'account:' || (actor #>> '{account,homePage}') || '|' || (actor #>> '{account,name}')
            when has_mbox then 'mbox:' || regexp_replace(actor ->> 'mbox', '^mailto:', '', 'i')
            when has_mbox_sha1sum then 'mbox_sha1sum:' || lower(actor ->> 'mbox_sha1sum')
            when has_openid then 'openid:' || (actor ->> 'openid')
        end as learner_identifier,
        case
            when has_account then 'account'
            when has_mbox then 'mbox'
            when has_mbox_sha1sum then 'mbox_sha1sum'
            when has_openid then 'openid'
        end as learner_identifier_type,
        coalesce(%(verb_event_types)s::jsonb ->> verb_id, 'other') as event_type,
        regexp_replace(activity ->> 'id', '^.*/courses/', '') as course_id,
        coalesce(
            activity #>> '{definition,name,en-US}', activity #>> '{definition,name,en}', activity ->> 'id'
        ) as course_name,
        round(
            case
                when score_scaled is not null then greatest(score_scaled, 0)
                when score_max > score_min then (score_raw - score_min) / (score_max - score_min)
            end,
            6
        ) as score_normalized,
        case when jsonb_typeof(result -> 'success') = 'boolean' then (result ->> 'success')::boolean end as is_success,
        case
            when jsonb_typeof(result -> 'completion') = 'boolean' then (result ->> 'completion')::boolean
        end as is_completion,
        -- beyond an integer's range a duration is not credible: unknown, not a cast error that stops the chunk
        case when duration_total < 2147483647.5 then round(duration_total)::integer end as duration_seconds
    from timed
),

final as (
    select
        *,
        coalesce(score_scaled between -1 and 1, true) as is_score_in_range,
        nullif(concat_ws(
            '; ',
            case when not is_object then 'not a JSON object' end,
            case when not is_id_uuid then 'id is not a UUID' end,
            timestamp_problem,
            case when is_in_future then 'timestamp is in the future beyond the tolerance' end,
            case when is_stored_in_future then 'stored is in the future beyond the tolerance' end,
            case when not is_verb_iri then 'verb id is not an IRI' end,
            case when actor_identifier_count <> 1 then 'actor must have exactly one identifier' end,
            case when score_scaled not between -1 and 1 then 'result.score.scaled outside [-1, 1]' end,
            case when score_min > score_max then 'result.score.min above max' end,
            case
                when score_raw < score_min or score_raw > score_max then 'result.score.raw outside [min, max]'
            end
        ), '') as reject_reason
    from checked
)

select * from final
