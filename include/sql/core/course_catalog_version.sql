-- one row per course per catalog version, with when that version was known (known_from, known_until)
-- The catalog just loaded, known from now on; the very first one counts for every earlier date too
-- (known_from null: nothing older is known). The loader first closes the version it replaces (known_until),
-- in the same transaction, so features read the catalog as it was at their reference date's cut-off.
insert into core.course_catalog_version (
    course_id, title, difficulty, is_mandatory, due_within_days, skill_tags, catalog_sha256, known_from,
    known_until
)
select
    loaded_course.course_id,
    loaded_course.title,
    loaded_course.difficulty,
    loaded_course.is_mandatory,
    loaded_course.due_within_days,
    loaded_course.skill_tags,
    loaded_course.catalog_sha256,
    case when exists (select from core.course_catalog_version) then now() end as known_from,
    null as known_until
from core.course_catalog as loaded_course
