-- one row per reference date a build computes, with its cut-off: the end of the date (UTC) + %(as_of_grace)s
-- A feature row for the date uses exactly the facts known by the cut-off and valid at the date. An
-- explicitly requested restatement passes %(known_now_at)s: every date then uses what is known now.
with requested as (
    select distinct unnest(%(reference_dates)s::date[]) as reference_date
),

final as (
    select
        reference_date,
        coalesce(
            %(known_now_at)s::timestamptz,
            (reference_date + 1)::timestamp at time zone 'UTC' + %(as_of_grace)s::interval
        ) as cutoff_at
    from requested
)

select * from final
