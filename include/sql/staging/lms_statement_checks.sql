-- one row per distinct statement id of an extraction batch, with what the gate checks
-- Rows come from the batch's staging table, bound to the name staging_batch by the loader; the first copy
-- of a statement id received wins, repeats of a page are not errors.
with received as (
    select
        statement_id,
        occurred_at,
        timestamp_problem,
        is_timestamp_assumed_utc,
        stored_at,
        statement,
        payload_sha256,
        raw_text,
        row_number() over (partition by statement_id order by received_order) as copy_rank
    from staging_batch
),

first_copies as (
    select * from received
    where copy_rank = 1
),

checked as (
    select
        statement_id,
        occurred_at,
        stored_at,
        payload_sha256,
        raw_text,
        statement,
        timestamp_problem,
        is_timestamp_assumed_utc,
        statement ->> 'id' as declared_id,
        statement #>> '{verb,id}' as verb_id,
        statement #>> '{object,objectType}' as object_type,
        statement #>> '{object,id}' as object_id,
        jsonb_typeof(statement) = 'object' as is_object,
        coalesce(statement ->> 'id', '')
        ~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' as is_id_uuid,
        coalesce(statement #>> '{verb,id}', '') ~ '^[A-Za-z][A-Za-z0-9+.-]*:[^\s]+$' as is_verb_iri,
        (coalesce(statement -> 'actor', '{}'::jsonb) ? 'mbox')::integer
        + (coalesce(statement -> 'actor', '{}'::jsonb) ? 'mbox_sha1sum')::integer
        + (coalesce(statement -> 'actor', '{}'::jsonb) ? 'openid')::integer
        + (coalesce(statement -> 'actor', '{}'::jsonb) ? 'account')::integer as actor_identifier_count,
        case
            when jsonb_typeof(statement #> '{result,score,scaled}') = 'number'
                then (statement #>> '{result,score,scaled}')::numeric
        end as score_scaled,
        case
            when jsonb_typeof(statement #> '{result,score,raw}') = 'number'
                then (statement #>> '{result,score,raw}')::numeric
        end as score_raw,
        case
            when jsonb_typeof(statement #> '{result,score,min}') = 'number'
                then (statement #>> '{result,score,min}')::numeric
        end as score_min,
        case
            when jsonb_typeof(statement #> '{result,score,max}') = 'number'
                then (statement #>> '{result,score,max}')::numeric
        end as score_max,
        coalesce(occurred_at > %(future_limit)s::timestamptz, false) as is_in_future
    from first_copies
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
