-- one row per person_pseudonym per reference_date per feature_set_version per horizon with a known label,
-- whose quasi-identifier set (analytics.employee_features) and horizon at least k people with a known label
-- share: a label still unknown for some of a group would otherwise shrink it below k. The pseudonymous
-- mart.training_set for analysts. Labels are read from mart.turnover_label, not analytics.turnover_label, so
-- that this view depends only on analytics.employee_features, whose definition is applied before it.
drop view if exists analytics.training_set;

create view analytics.training_set as
with policy as (
    select analytics_policy.min_group_size from governance.analytics_policy
),

joined as (
    select
        features.*,
        label.horizon_days,
        label.label,
        label.exit_category
    from analytics.employee_features as features
    inner join governance.person_pseudonym as pseudonym on features.person_pseudonym = pseudonym.person_pseudonym
    inner join mart.turnover_label as label
        on
            pseudonym.employee_key = label.employee_key
            and features.reference_date = label.reference_date
    where label.label is not null
),

grouped as (
    select
        joined.*,
        count(*) over (
            partition by
                joined.reference_date,
                joined.feature_set_version,
                joined.horizon_days,
                joined.tenure_band,
                joined.department,
                joined.location,
                joined.job_level_band,
                joined.team_size_band,
                joined.salary_currency
        ) as group_size
    from joined
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
        grouped.department,
        grouped.location,
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
        grouped.lms_cutoff_date,
        grouped.horizon_days,
        grouped.label,
        grouped.exit_category
    from grouped
    cross join policy
    where grouped.group_size >= policy.min_group_size
)

select * from final;
