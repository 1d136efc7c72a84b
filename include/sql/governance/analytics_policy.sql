-- one row: the smallest group of people a row of the analytics views may belong to (k-anonymity)
-- From the configuration's analytics.min_group_size; the views read it here, at query time.
insert into governance.analytics_policy (
    policy_slot,
    min_group_size,
    updated_at
) values (
    'current',
    %(min_group_size)s,
    now()
)
on conflict (policy_slot) do update set
    min_group_size = excluded.min_group_size,
    updated_at = excluded.updated_at
