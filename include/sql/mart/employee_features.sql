-- one row per employee_key per reference_date per feature_set_version (active employees only)
-- Joins the learning windows and the HR attributes built for the targets of this build, each as known
-- at its reference date's cut-off (cutoff_at).
with targets as (
    select * from feature_targets
),

final as (
    select
        targets.employee_key,
        targets.reference_date,
        targets.hris_employee_id,
        targets.lms_cutoff_date,
        targets.cutoff_at,
        lms.enrolments_30d,
        lms.enrolments_90d,
        lms.enrolments_180d,
        lms.completions_30d,
        lms.completions_90d,
        lms.completions_180d,
        lms.completion_rate_30d,
        lms.completion_rate_90d,
        lms.completion_rate_180d,
        lms.mean_score_30d,
        lms.mean_score_90d,
        lms.mean_score_180d,
        lms.learning_minutes_30d,
        lms.learning_minutes_90d,
        lms.learning_minutes_180d,
        lms.distinct_courses_30d,
        lms.distinct_courses_90d,
        lms.distinct_courses_180d,
        lms.mandatory_courses_overdue,
        lms.days_since_last_activity,
        lms.engagement_trend,
        lms.skill_tag_breadth_180d,
        lms.difficulty_weighted_completions_180d,
        hr.tenure_days,
        hr.job_level,
        hr.department,
        hr.location,
        hr.time_in_role_days,
        hr.days_since_last_promotion,
        hr.manager_changes_12m,
        hr.manager_tenure_days,
        hr.last_pay_change_pct,
        hr.months_since_last_raise,
        hr.is_pay_frozen,
        hr.performance_rating,
        hr.team_size,
        hr.team_leavers_90d,
        %(feature_set_version)s::integer as feature_set_version
    from targets
    inner join employee_lms_window_features as lms
        on targets.employee_key = lms.employee_key and targets.reference_date = lms.reference_date
    inner join employee_hr_features as hr
        on targets.employee_key = hr.employee_key and targets.reference_date = hr.reference_date
)

select * from final
