-- one row per employee_key per reference_date per horizon: voluntary exit within the horizon
-- Positive: a voluntary exit in (reference_date, reference_date + horizon], its last day included. An
-- involuntary or other exit in the horizon is censored (never a positive, never a negative), and so is
-- an exit on or before the reference date: the row was built while the exit was not yet reported (as
-- known at), but the employee was no longer there to stay or leave. Without an exit, the label
-- stays null until HR is known through the end of the horizon (%(hr_known_through)s), the value
-- recorded in hr_known_through when the label was last computed.
with feature_rows as (
    -- the temp table label_scope: every feature row, or those whose label may have changed
    select distinct
        employee_key,
        reference_date,
        hris_employee_id
    from label_scope
),

horizons as (
    select unnest(%(horizons)s::integer[]) as horizon_days
),

employment_outcomes as (
    -- the outcome as of the latest HR interval, kept up to date by the build (see build.py)
    select
        hris_employee_id as employee_id,
        exit_date,
        exit_category
    from mart.turnover_label_outcome
),

labelled as (
    select
        feature_rows.employee_key,
        feature_rows.reference_date,
        horizons.horizon_days,
        feature_rows.hris_employee_id,
        employment_outcomes.exit_date,
        employment_outcomes.exit_category,
        %(hr_known_through)s::date as hr_known_through,
        case
            when employment_outcomes.exit_date <= feature_rows.reference_date then 'censored_exit_before_reference'
            when
                employment_outcomes.exit_date > feature_rows.reference_date
                and employment_outcomes.exit_date <= feature_rows.reference_date + horizons.horizon_days
                then
                    case employment_outcomes.exit_category
                        when 'voluntary' then 'positive'
                        when 'involuntary' then 'censored_involuntary'
                        else 'censored_other_exit'
                    end
            when feature_rows.reference_date + horizons.horizon_days > %(hr_known_through)s::date then 'horizon_open'
            else 'negative'
        end as label_status
    from feature_rows
    cross join horizons
    left join employment_outcomes on feature_rows.hris_employee_id = employment_outcomes.employee_id
),

final as (
    select
        employee_key,
        reference_date,
        horizon_days,
        hris_employee_id,
        label_status,
        hr_known_through,
        case label_status when 'positive' then true when 'negative' then false end as label,
        case when label_status not in ('negative', 'horizon_open') then exit_date end as exit_date,
        case when label_status not in ('negative', 'horizon_open') then exit_category end as exit_category,
        label_status like 'censored%%' as is_censored
    from labelled
)

select * from final
