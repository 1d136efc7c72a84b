-- one row per model_version per reference_date per metric: the champion's performance and drift
-- Written from Python one metric at a time after the figures are computed (model/monitoring.py): performance
-- on a date whose labels have matured, drift (psi_score, psi:<feature>) at the latest scored date. A rerun that
-- computes the same figures leaves the row as it was, computed_at included, so rerunning a date changes
-- nothing; a row is rewritten only when one of its figures changed.
insert into mart.model_monitoring as monitoring (
    model_version,
    reference_date,
    metric,
    value,
    lower,
    upper,
    threshold,
    status,
    computed_at
) values (
    %(model_version)s,
    %(reference_date)s,
    %(metric)s,
    %(value)s,
    %(lower)s,
    %(upper)s,
    %(threshold)s,
    %(status)s,
    %(computed_at)s
)
on conflict (model_version, reference_date, metric) do update set
    value = excluded.value,
    lower = excluded.lower,
    upper = excluded.upper,
    threshold = excluded.threshold,
    status = excluded.status,
    computed_at = excluded.computed_at
where
(monitoring.value, monitoring.lower, monitoring.upper, monitoring.threshold, monitoring.status)
is distinct from (excluded.value, excluded.lower, excluded.upper, excluded.threshold, excluded.status)
