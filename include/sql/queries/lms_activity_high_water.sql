-- one row, one value: the latest of one time column of core.lms_activity (the placeholder `time_column`,
-- stored_at or loaded_at, filled in by turnover_signals.lms.activity), never below the mark passed
-- The times have block-range indexes, which cannot give a maximum: only the rows above the caller's previous
-- mark are read (all rows when it has none). A mark never moves back, even when retention deletes the rows
-- that set it.
select
    greatest(
        %(above)s::timestamptz,
        (
            select max(activity.{time_column}) from core.lms_activity as activity
            where activity.{time_column} > coalesce(%(above)s::timestamptz, '-infinity')
        )
    ) as high_water
