-- When each activity row was published: the start of the loader's publishing transaction (the
-- column's default, so every writer records it). An incremental identity run finds new xAPI actors
-- in the activity loaded since its previous run, not in the activity stored since: the loader
-- re-reads lms.since_overlap_days before its watermark (and a lowered watermark re-reads a whole
-- period), so a statement can arrive with a stored time older than activity a run has already seen.
-- Rows published before this migration have no load time; the first identity run after it reads all
-- activity, as its previous run recorded no load-time mark.
alter table core.lms_activity add column if not exists loaded_at timestamptz;
alter table core.lms_activity alter column loaded_at set default now();

create index if not exists lms_activity_loaded_idx on core.lms_activity (loaded_at);

alter table audit.identity_reconciliation add column if not exists lms_activity_loaded_high_water timestamptz;
