-- k-anonymous analytics views (issue 22, point 5): the smallest group of people a row of the analytics views
-- may belong to. The views themselves are repeatable definitions (include/sql/repeatable/views/analytics.*):
-- they generalize the quasi-identifiers and show a row only when at least k people of its reference date share
-- its quasi-identifier set; they read k here with their owner's rights, like the pseudonym key, and show
-- nothing without it (fail closed).

-- one row at most: the disclosure policy of the analytics views. The warehouse_retention DAG's governance task
-- writes min_group_size from `analytics.min_group_size` of the configuration (turnover_signals.governance.
-- pseudonyms.install_analytics_policy); the row inserted here holds the configuration's default until it runs.
create table if not exists governance.analytics_policy (
    policy_slot text primary key default 'current',
    min_group_size integer not null,
    updated_at timestamptz not null default now(),
    constraint analytics_policy_single_slot_check check (policy_slot = 'current'),
    constraint analytics_policy_min_group_size_check check (min_group_size >= 1)
);

insert into governance.analytics_policy (policy_slot, min_group_size) values ('current', 5)
on conflict (policy_slot) do nothing;
