-- core.lms_activity and raw.lms_statement are written in publishing order: each chunk's rows are appended with
-- one load time, their stored times rising and occurred times close behind. So the tables' pages follow these
-- times, and a block-range index per time finds the rows of a range (activity loaded since the last identity
-- run or daily refresh, today's provisional view, statements older than the retention period) by reading only
-- the page ranges that can hold them. A b-tree per time did the same at a cost on every published statement,
-- about a quarter of the publisher's insert into core.lms_activity (benchmarks/lms_publish_costs.py measures
-- both).
-- A block-range index cannot give a maximum: the high-water marks read only the rows above the previous
-- mark (include/sql/queries/lms_activity_high_water.sql).
drop index if exists core.lms_activity_loaded_idx;
drop index if exists core.lms_activity_stored_idx;
drop index if exists core.lms_activity_occurred_idx;
drop index if exists raw.lms_statement_stored_idx;

-- autosummarize: a page range filled by a publish is summarized by autovacuum soon after, not only at the
-- next vacuum (a range not yet summarized is always read, so the index stays correct either way)
create index if not exists lms_activity_loaded_brin on core.lms_activity using brin (loaded_at)
with (autosummarize = on);
create index if not exists lms_activity_stored_brin on core.lms_activity using brin (stored_at)
with (autosummarize = on);
create index if not exists lms_activity_occurred_brin on core.lms_activity using brin (occurred_at)
with (autosummarize = on);
create index if not exists lms_statement_stored_brin on raw.lms_statement using brin (stored_at)
with (autosummarize = on);
