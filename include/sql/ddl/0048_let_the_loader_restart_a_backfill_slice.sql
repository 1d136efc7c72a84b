-- A backfill slice extracted again (its task cleared or retried) drops its earlier attempt's checks tables and
-- the row that handed them to the publish, in one transaction (lms/backfill.py, _forget_extraction): until the
-- new attempt is gated and recorded, the publish finds the slice not extracted, never a row naming tables that
-- are gone or not gated yet. So the loader may delete a slice's row.
insert into governance.role_privilege (role_name, statement_template, added_in) values
('turnover_loader', 'grant delete on audit.lms_backfill_slice to %1$I', '0048')
on conflict do nothing;

select governance.apply_role_privileges();
