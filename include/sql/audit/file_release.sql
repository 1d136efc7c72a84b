-- one row per release of a quarantined file: who released it, when and why
-- The quarantine reason is copied from the manifest row, whose status the release then sets to
-- `released` (its next attempt rewrites that row); released_at takes its default, now().
insert into audit.file_release (file_name, sha256, quarantine_reason, released_by, reason)
values (%(file_name)s, %(sha256)s, %(quarantine_reason)s, %(released_by)s, %(reason)s)
