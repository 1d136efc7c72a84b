-- Releasing a quarantined HRIS file for another attempt keeps the audit trail: the manifest row
-- is marked `released` (and reused by the next attempt) and the decision is kept here.

-- one row per release of a quarantined file: who released it, when and why
create table if not exists audit.file_release (
    release_id bigint generated always as identity primary key,
    file_name text not null,
    sha256 text not null,
    quarantine_reason text,
    released_by text not null,
    reason text not null,
    released_at timestamptz not null default now()
);

alter table audit.file_manifest drop constraint if exists file_manifest_status_check;
alter table audit.file_manifest add constraint file_manifest_status_check
check (status in ('loaded', 'duplicate', 'quarantined', 'superseded', 'released'));
