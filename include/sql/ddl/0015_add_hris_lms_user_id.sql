-- The LMS user id some HRIS record per worker (optional column `lms_user_id` of the employees
-- feed), carried into the history and used by identity matching rule 3.
alter table raw.hris_employee_snapshot add column if not exists lms_user_id text;
alter table core.employee_history add column if not exists lms_user_id text;
alter table core.identity_employment add column if not exists lms_user_id text;

create index if not exists identity_employment_lms_user_idx on core.identity_employment (lms_user_id)
where lms_user_id is not null;
