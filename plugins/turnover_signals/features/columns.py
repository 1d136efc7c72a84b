"""The columns of `mart.employee_features`: which are features, which the gate bounds, which are
bookkeeping."""

from __future__ import annotations

import psycopg

LMS_COLUMNS = (
    "enrolments_30d",
    "enrolments_90d",
    "enrolments_180d",
    "completions_30d",
    "completions_90d",
    "completions_180d",
    "completion_rate_30d",
    "completion_rate_90d",
    "completion_rate_180d",
    "mean_score_30d",
    "mean_score_90d",
    "mean_score_180d",
    "learning_minutes_30d",
    "learning_minutes_90d",
    "learning_minutes_180d",
    "distinct_courses_30d",
    "distinct_courses_90d",
    "distinct_courses_180d",
    "mandatory_courses_overdue",
    "days_since_last_activity",
    "engagement_trend",
    "skill_tag_breadth_180d",
    "difficulty_weighted_completions_180d",
)
HR_COLUMNS = (
    "tenure_days",
    "job_level",
    "department",
    "location",
    "time_in_role_days",
    "days_since_last_promotion",
    "manager_changes_12m",
    "manager_tenure_days",
    "last_pay_change_pct",
    "months_since_last_raise",
    "is_pay_frozen",
    "performance_rating",
    "team_size",
    "team_leavers_90d",
)
FEATURE_COLUMNS = (*LMS_COLUMNS, *HR_COLUMNS)  # a test keeps it equal to the table's feature columns

RATE_COLUMNS = (
    "completion_rate_30d",
    "completion_rate_90d",
    "completion_rate_180d",
    "mean_score_30d",
    "mean_score_90d",
    "mean_score_180d",
)
# Counts and durations; a negative time since an event means an event dated after the reference
# date leaked in.
NON_NEGATIVE_COLUMNS = (
    "enrolments_30d",
    "enrolments_90d",
    "enrolments_180d",
    "completions_30d",
    "completions_90d",
    "completions_180d",
    "learning_minutes_30d",
    "learning_minutes_90d",
    "learning_minutes_180d",
    "distinct_courses_30d",
    "distinct_courses_90d",
    "distinct_courses_180d",
    "mandatory_courses_overdue",
    "days_since_last_activity",
    "skill_tag_breadth_180d",
    "difficulty_weighted_completions_180d",
    "tenure_days",
    "time_in_role_days",
    "days_since_last_promotion",
    "manager_changes_12m",
    "manager_tenure_days",
    "months_since_last_raise",
    "team_size",
    "team_leavers_90d",
)

# the row's identity and bookkeeping: what it describes, its cut-off, which build wrote it
NON_FEATURE_COLUMNS = frozenset(
    {
        "employee_key",
        "reference_date",
        "feature_set_version",
        "hris_employee_id",
        "lms_cutoff_date",
        "cutoff_at",
        "built_at",
        "build_id",
    }
)
# set when a row is published, never staged
PUBLISH_COLUMNS = ("built_at", "build_id")


def feature_columns(conn: psycopg.Connection) -> list[str]:
    """The columns of `mart.employee_features`, in table order."""
    rows = conn.execute(
        """
        select column_name from information_schema.columns
        where table_schema = 'mart' and table_name = 'employee_features' order by ordinal_position
        """
    ).fetchall()
    return [row[0] for row in rows]


def staged_columns(conn: psycopg.Connection) -> list[str]:
    """The columns a build stages: every column of `mart.employee_features` but those set when publishing."""
    return [column for column in feature_columns(conn) if column not in PUBLISH_COLUMNS]
