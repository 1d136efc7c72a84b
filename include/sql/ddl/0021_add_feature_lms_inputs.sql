-- Features (issue 6, daily cost): what a row's learning columns were computed from besides the
-- activity itself, the employee's xAPI actor links and the course catalog, as one fingerprint. A daily
-- build carries the learning columns of the day before forward for an employee only when it is
-- unchanged (and no activity entered or left a window); rows built before this migration have none
-- and are always recomputed.
alter table mart.employee_features add column if not exists lms_inputs_md5 text;
