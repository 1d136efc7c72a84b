-- Indexes that keep an incremental identity run proportional to what changed, not to table sizes.

-- HR intervals a later snapshot closed (changed_inputs: valid_to after the last snapshot date)
create index if not exists employee_history_valid_to_idx
on core.employee_history (valid_to)
where valid_to is not null;

-- xAPI account actors named by an SSO GUID (close_scope compares lower(account_name) with GUIDs)
create index if not exists identity_learner_account_lower_idx
on core.identity_learner (lower(account_name));

-- mbox_sha1sum actors of the scoped employees' addresses (close_scope)
create index if not exists identity_learner_sha1_idx
on core.identity_learner (mbox_sha1sum)
where mbox_sha1sum is not null;

-- work emails still to be hashed (fill_mbox_sha1sums looks for them on every run)
create index if not exists identity_work_email_unhashed_idx
on core.identity_work_email (email_normalized)
where mbox_sha1sum is null;
