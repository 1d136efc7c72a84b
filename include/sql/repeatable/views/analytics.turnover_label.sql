-- one row per person_pseudonym per reference_date per horizon_days, for the people and dates that
-- analytics.employee_features shows; an exit month is shown only when at least k people of the view share it
create or replace view analytics.turnover_label as
with policy as (
    select analytics_policy.min_group_size from governance.analytics_policy
),

shown as (
    select distinct
        features.person_pseudonym,
        features.reference_date
    from analytics.employee_features as features
),

labels as (
    select
        pseudonym.person_pseudonym,
        label.reference_date,
        label.horizon_days,
        label.label,
        label.label_status,
        label.exit_category,
        label.is_censored,
        date_trunc('month', label.exit_date)::date as exit_month
    from mart.turnover_label as label
    inner join governance.person_pseudonym as pseudonym on label.employee_key = pseudonym.employee_key
    inner join shown
        on pseudonym.person_pseudonym = shown.person_pseudonym and label.reference_date = shown.reference_date
),

-- colleagues know when someone left: a month with fewer than k leavers would name them
exit_month_leavers as (
    select
        labels.exit_month,
        count(distinct labels.person_pseudonym) as leavers
    from labels
    where labels.exit_month is not null
    group by labels.exit_month
),

final as (
    select
        labels.person_pseudonym,
        labels.reference_date,
        labels.horizon_days,
        labels.label,
        labels.label_status,
        labels.exit_category,
        labels.is_censored,
        case when exit_month_leavers.leavers >= policy.min_group_size then labels.exit_month end as exit_month
    from labels
    cross join policy
    left join exit_month_leavers on labels.exit_month = exit_month_leavers.exit_month
)

select * from final;
