-- one row per person_pseudonym per reference_date per feature_set_version whose quasi-identifier set at least
-- governance.analytics_policy.min_group_size people share on that date
-- The quasi-identifier set, what someone who knows a colleague can match a row on: reference_date,
-- feature_set_version, tenure_band, department, location, job_level_band, team_size_band, salary_currency.
-- Day counts are shown as bands (analytics.day_count_band), level and team size as bands, and a department,
-- location or pay currency of fewer than k people on the date as 'other'; a row is shown only when at least
-- k people share its set. k is governance.analytics_policy.min_group_size (configuration
-- analytics.min_group_size, migration 0033); without it the view shows nothing. The rest (ratings, pay
-- changes, salary band, learning) are the attributes the grouping protects.
-- The two views built on this one are dropped with it (its columns may change) and re-created by their own
-- definitions, which the migration runner applies next: a definition whose view is missing is due.
drop view if exists analytics.training_set;
drop view if exists analytics.turnover_label;
drop view if exists analytics.employee_features;

create view analytics.employee_features as
with policy as (
    select analytics_policy.min_group_size from governance.analytics_policy
),

pay_as_of as (
    select
        features.employee_key,
        features.reference_date,
        features.feature_set_version,
        history.base_salary,
        history.currency
    from mart.employee_features as features
    inner join core.employee_history as history
        on
            features.hris_employee_id = history.employee_id
            and features.reference_date >= history.valid_from
            and (history.valid_to is null or features.reference_date < history.valid_to)
),

pseudonymized as (
    select
        pseudonym.person_pseudonym,
        features.reference_date,
        features.feature_set_version,
        features.enrolments_30d,
        features.enrolments_90d,
        features.enrolments_180d,
        features.completions_30d,
        features.completions_90d,
        features.completions_180d,
        features.completion_rate_30d,
        features.completion_rate_90d,
        features.completion_rate_180d,
        features.mean_score_30d,
        features.mean_score_90d,
        features.mean_score_180d,
        features.learning_minutes_30d,
        features.learning_minutes_90d,
        features.learning_minutes_180d,
        features.distinct_courses_30d,
        features.distinct_courses_90d,
        features.distinct_courses_180d,
        features.mandatory_courses_overdue,
        features.days_since_last_activity,
        features.engagement_trend,
        features.skill_tag_breadth_180d,
        features.difficulty_weighted_completions_180d,
        features.department,
        features.location,
        features.manager_changes_12m,
        features.last_pay_change_pct,
        features.months_since_last_raise,
        features.is_pay_frozen,
        features.performance_rating,
        features.team_leavers_90d,
        band.band_label as salary_band,
        pay_as_of.currency,
        features.lms_cutoff_date,
        analytics.day_count_band(features.tenure_days) as tenure_band,
        analytics.day_count_band(features.time_in_role_days) as time_in_role_band,
        analytics.day_count_band(features.days_since_last_promotion) as time_since_last_promotion_band,
        analytics.day_count_band(features.manager_tenure_days) as manager_tenure_band,
        case
            when features.job_level is null then null
            when features.job_level <= 2 then 'levels 1-2'
            when features.job_level <= 4 then 'levels 3-4'
            when features.job_level <= 6 then 'levels 5-6'
            else 'levels 7+'
        end as job_level_band,
        case
            when features.team_size is null then null
            when features.team_size < 5 then 'under 5'
            when features.team_size < 10 then '5-9'
            when features.team_size < 20 then '10-19'
            else '20 and over'
        end as team_size_band
    from mart.employee_features as features
    inner join governance.person_pseudonym as pseudonym on features.employee_key = pseudonym.employee_key
    left join pay_as_of
        on
            features.employee_key = pay_as_of.employee_key
            and features.reference_date = pay_as_of.reference_date
            and features.feature_set_version = pay_as_of.feature_set_version
    left join analytics.salary_band as band
        on
            pay_as_of.base_salary >= band.lower_bound
            and (band.upper_bound is null or pay_as_of.base_salary < band.upper_bound)
),

-- A department, location or currency held by fewer than k people on the date becomes 'other', so that a
-- small site or a one-person currency does not suppress its people's rows outright (nor single them out).
rare_values_generalized as (
    select
        pseudonymized.*,
        case
            when
                count(*) over (
                    partition by
                        pseudonymized.reference_date, pseudonymized.feature_set_version, pseudonymized.department
                ) >= policy.min_group_size
                then pseudonymized.department
            else 'other'
        end as department_shown,
        case
            when
                count(*) over (
                    partition by
                        pseudonymized.reference_date, pseudonymized.feature_set_version, pseudonymized.location
                ) >= policy.min_group_size
                then pseudonymized.location
            else 'other'
        end as location_shown,
        case
            when
                count(*) over (
                    partition by
                        pseudonymized.reference_date, pseudonymized.feature_set_version, pseudonymized.currency
                ) >= policy.min_group_size
                then pseudonymized.currency
            else 'other'
        end as salary_currency
    from pseudonymized
    cross join policy
),

-- a person has one row per reference date and feature set version: rows counted are people
grouped as (
    select
        rare_values_generalized.*,
        count(*) over (
            partition by
                rare_values_generalized.reference_date,
                rare_values_generalized.feature_set_version,
                rare_values_generalized.tenure_band,
                rare_values_generalized.department_shown,
                rare_values_generalized.location_shown,
                rare_values_generalized.job_level_band,
                rare_values_generalized.team_size_band,
                rare_values_generalized.salary_currency
        ) as group_size
    from rare_values_generalized
),

final as (
    select
        grouped.person_pseudonym,
        grouped.reference_date,
        grouped.feature_set_version,
        grouped.enrolments_30d,
        grouped.enrolments_90d,
        grouped.enrolments_180d,
        grouped.completions_30d,
        grouped.completions_90d,
        grouped.completions_180d,
        grouped.completion_rate_30d,
        grouped.completion_rate_90d,
        grouped.completion_rate_180d,
        grouped.mean_score_30d,
        grouped.mean_score_90d,
        grouped.mean_score_180d,
        grouped.learning_minutes_30d,
        grouped.learning_minutes_90d,
        grouped.learning_minutes_180d,
        grouped.distinct_courses_30d,
        grouped.distinct_courses_90d,
        grouped.distinct_courses_180d,
        grouped.mandatory_courses_overdue,
        grouped.days_since_last_activity,
        grouped.engagement_trend,
        grouped.skill_tag_breadth_180d,
        grouped.difficulty_weighted_completions_180d,
        grouped.tenure_band,
        grouped.job_level_band,
        grouped.department_shown as department,
        grouped.location_shown as location,
        grouped.time_in_role_band,
        grouped.time_since_last_promotion_band,
        grouped.manager_changes_12m,
        grouped.manager_tenure_band,
        grouped.last_pay_change_pct,
        grouped.months_since_last_raise,
        grouped.is_pay_frozen,
        grouped.performance_rating,
        grouped.team_size_band,
        grouped.team_leavers_90d,
        grouped.salary_band,
        grouped.salary_currency,
        grouped.lms_cutoff_date
    from grouped
    cross join policy
    where grouped.group_size >= policy.min_group_size
)

select * from final;

comment on view analytics.employee_features is
'Pseudonymized features: quasi-identifiers in bands, rare values as ''other'', rows of groups smaller than '
'governance.analytics_policy.min_group_size (configuration: analytics.min_group_size) left out';
