-- one row per employee_key per reference_date: the champion's voluntary-exit risk
-- Written one employee at a time after scoring in Python; scoring a date again first deletes that date's rows
-- in the same transaction (model/score.py). top_features is [] where the department is too small to show
-- why, and top_features_withheld_reason then says so.
insert into mart.turnover_risk_score (
    employee_key,
    reference_date,
    feature_set_version,
    model_version,
    score,
    risk_rank,
    risk_band,
    top_features,
    top_features_withheld_reason,
    scored_at
) values (
    %(employee_key)s,
    %(reference_date)s,
    %(feature_set_version)s,
    %(model_version)s,
    %(score)s,
    %(risk_rank)s,
    %(risk_band)s,
    %(top_features)s,
    %(top_features_withheld_reason)s,
    %(scored_at)s
)
