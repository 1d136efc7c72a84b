-- Statement ids and learner identifiers are identifiers, not words: they compare byte by byte (collation "C").
-- Under any other collation PostgreSQL compares text through the locale's rules (strcoll) on every step of a
-- b-tree descent, and the publisher descends the primary keys of raw.lms_statement and core.lms_activity and
-- the learner index of core once per statement it inserts (benchmarks/lms_publish_costs.py: 1.6 to 3.5 µs a
-- statement under C.UTF-8, 7.9 µs under ICU's US English). Equality is unchanged (every collation here is
-- deterministic); `order by` on these columns becomes byte order.
-- Every column holding a statement id or a learner identifier changes together, so that a join between two
-- of them keeps one collation and can use the index of either side (a default-collation index does not serve
-- a comparison under "C").
-- Only the indexes on these columns are rebuilt (the rows are not rewritten), under an exclusive lock on each
-- table for the time of its rebuild: docs/deploy/upgrading.md.

-- a view's column cannot change under it; the repeatable definitions re-create it after the numbered migrations
drop view if exists mart.lms_activity_today_provisional;

alter table raw.lms_statement
alter column statement_id type text collate "C",
alter column voided_by_statement_id type text collate "C";

alter table raw.lms_statement_rejected
alter column statement_id type text collate "C";

alter table audit.lms_void_applied
alter column voided_statement_id type text collate "C",
alter column voiding_statement_id type text collate "C";

alter table core.lms_activity
alter column statement_id type text collate "C",
alter column learner_identifier type text collate "C";

alter table core.identity_learner
alter column learner_identifier type text collate "C";

alter table mart.learner_daily_activity
alter column learner_identifier type text collate "C";
