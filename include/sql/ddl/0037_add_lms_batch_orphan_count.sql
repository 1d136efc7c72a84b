-- An extraction whose warehouse session ended mid-run (a server restart, a killed worker) leaves its staging
-- checks tables behind; the next hourly extraction drops those no live extraction holds
-- (turnover_signals.lms.staging) and counts them on its first chunk's row, so that interrupted runs show.
alter table audit.lms_extract_batch add column if not exists orphan_tables_dropped integer not null default 0;
