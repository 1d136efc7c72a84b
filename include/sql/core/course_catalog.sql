-- one row per course of the business-edited catalog (include/course_catalog.csv) now in use
-- From the catalog file's staging table (named after the file's sha256: the placeholder `staging`, filled in
-- by the loader), all text as the CSV gave it, once its suite passed; the loader empties the table first, in
-- the same transaction, and keeps each catalog loaded in core.course_catalog_version.
insert into core.course_catalog (
    course_id, title, difficulty, is_mandatory, due_within_days, skill_tags, catalog_sha256
)
select
    btrim(course_id) as course_id,
    btrim(title) as title,
    difficulty::integer as difficulty,
    is_mandatory::boolean as is_mandatory,
    nullif(due_within_days, '')::integer as due_within_days,
    array(
        select btrim(tag) from unnest(string_to_array(skill_tags, ';')) as tag
        where btrim(tag) <> ''
    ) as skill_tags,
    %(catalog_sha256)s
from {staging}
