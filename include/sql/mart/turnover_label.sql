-- one row per employee_key per reference_date per horizon: voluntary exit within the horizon
-- Positive: a voluntary exit in (reference_date, reference_date + horizon]. An involuntary or other
-- exit in the horizon is censored (never a positive, never a negative). Without an exit, the label
-- stays null until HR is known through the end of the horizon (%(hr_known_through)s).
with feature_rows as (
    select distinct
        employee_key,
        reference_date,
        hris_employee_id
    from mart.employee_features
),

horizons as (
    select unnest(%(horizons)s::integer[]) as horizon_days
),

employment_outcomes as (
    select distinct on (employee_id)
        employee_id,
        termination_category,
        coalesce(
            termination_date,
            case when closed_by = 'absent_from_snapshot' then valid_to end
        ) as exit_date,
        case
            when termination_date is not null then coalesce(termination_category, 'other')
            when closed_by = 'absent_from_snapshot' then 'vanished_from_snapshot'
        end as exit_category
    from core.employee_history
    order by employee_id asc, valid_from desc
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
        case
            when label_status in ('positive', 'censored_involuntary', 'censored_other_exit') then exit_date
        end as exit_date,
        case
            when label_status in ('positive', 'censored_involuntary', 'censored_other_exit') then exit_category
        end as exit_category,
        label_status like 'censored%%' as is_censored
    from labelled
)

select * from final
