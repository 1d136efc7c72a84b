-- Each identity run records a digest of the steward decisions it applied, so the next run can tell that
-- nothing it reads has changed (a withdrawal changes no timestamp) and skip instead of republishing.
alter table audit.identity_reconciliation add column if not exists override_digest text;
