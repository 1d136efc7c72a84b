-- one row per course id in learning activity that the catalog lacks, with its statements and first sighting
-- Refreshed after each extraction: counts are replaced, first_seen_at is kept; the loader first deletes the
-- courses the catalog has since gained (lms/catalog.py), in the same transaction.
insert into audit.unknown_course (course_id, statements, first_seen_at)
select
    activity.course_id,
    count(*) as statements,
    now() as first_seen_at
from core.lms_activity as activity
where
    activity.course_id is not null
    and not exists (
        select 1 from core.course_catalog as listed_course
        where listed_course.course_id = activity.course_id
    )
group by activity.course_id
on conflict (course_id) do update set statements = excluded.statements
returning course_id, statements
