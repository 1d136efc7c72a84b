-- one row per promotion decision or rollback of the turnover model
-- Append only: the log of every champion change and of every challenger kept out, with the values compared
-- (decision_id and decided_at come from the table's defaults).
insert into audit.model_promotion (
    decision,
    challenger_version,
    champion_before,
    champion_after,
    metric,
    challenger_value,
    champion_value,
    compared_on,
    reason,
    decided_by
) values (
    %(decision)s,
    %(challenger_version)s,
    %(champion_before)s,
    %(champion_after)s,
    %(metric)s,
    %(challenger_value)s,
    %(champion_value)s,
    %(compared_on)s,
    %(reason)s,
    %(decided_by)s
)
