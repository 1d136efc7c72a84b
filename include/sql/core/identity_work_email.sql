-- one row per HRIS employee_id per normalized work email per interval [valid_from, valid_to)
-- The first address of an employment is held from the hire date (activity before the first
-- snapshot still belongs to it); a later address from the snapshot that first shows it. Every
-- address is released when the employment ends, so a recycled mailbox never carries activity
-- across from its previous holder. Scoped by %(employee_ids)s (null = every employee).
with history as (
    select
        employee_id,
        valid_from,
        work_email,
        core.normalize_work_email(
            work_email, %(corporate_domains)s::text[], %(domain_aliases)s::jsonb, %(strip_plus_aliases)s::boolean
        ) as email_normalized
    from core.employee_history
    where
        work_email is not null
        and (%(employee_ids)s::text[] is null or employee_id = any(%(employee_ids)s::text[]))
),

changes as (
    select
        *,
        -- 1 where the address differs from the previous snapshot's (or there is none before)
        coalesce(
            lag(email_normalized) over (partition by employee_id order by valid_from) <> email_normalized, true
        )::integer as is_new_address
    from history
    where email_normalized is not null
),

address_runs as (
    select
        *,
        sum(is_new_address) over (partition by employee_id order by valid_from) as address_run
    from changes
),

intervals as (
    select
        employee_id,
        address_run,
        email_normalized,
        min(valid_from) as first_seen_date,
        (array_agg(work_email order by valid_from desc))[1] as work_email_raw
    from address_runs
    group by employee_id, address_run, email_normalized
),

bounded as (
    select
        intervals.*,
        employment.employment_start_date,
        employment.employment_end_date,
        lead(intervals.first_seen_date) over (
            partition by intervals.employee_id order by intervals.address_run
        ) as next_address_date
    from intervals
    inner join core.identity_employment as employment on intervals.employee_id = employment.hris_employee_id
),

final as (
    select
        employee_id as hris_employee_id,
        email_normalized,
        work_email_raw,
        null::text as mbox_sha1sum,
        case
            when address_run = 1 then least(employment_start_date, first_seen_date)
            else first_seen_date
        end as valid_from,
        coalesce(next_address_date, employment_end_date) as valid_to
    from bounded
)

select * from final
where valid_to is null or valid_to > valid_from
