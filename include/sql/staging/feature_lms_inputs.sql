-- one row per employee_key of the temp table feature_targets: a fingerprint of what its learning
-- columns are computed from besides the activity itself: its xAPI actor links (with their validity)
-- and the course catalog (difficulty, mandatory courses and their due days, skill tags)
with target_keys as (
    select distinct employee_key from feature_targets
),

catalog as (
    select
        md5(
            string_agg(
                concat_ws(
                    '|', course_id, difficulty, is_mandatory, coalesce(due_within_days::text, ''),
                    array_to_string(skill_tags, ',')
                ),
                ';' order by course_id
            )
        ) as catalog_md5
    from core.course_catalog
),

links as (
    select
        identity_row.employee_key,
        string_agg(
            concat_ws(
                '|', identity_row.identifier_value, identity_row.valid_from, coalesce(identity_row.valid_to::text, '')
            ),
            ';' order by identity_row.identifier_value, identity_row.valid_from
        ) as learner_links
    from core.employee_identity as identity_row
    inner join target_keys on identity_row.employee_key = target_keys.employee_key
    where identity_row.identifier_type = 'xapi_actor'
    group by identity_row.employee_key
),

final as (
    select
        target_keys.employee_key,
        md5(concat_ws('#', coalesce(catalog.catalog_md5, ''), coalesce(links.learner_links, ''))) as lms_inputs_md5
    from target_keys
    cross join catalog
    left join links on target_keys.employee_key = links.employee_key
)

select * from final
