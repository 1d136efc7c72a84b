-- one row per HRIS employee_id in scope: the key it holds after this run, and the new key issued for it
-- The temporary plan of a run's key assignment (identity/resolve.py binds it as identity_key_plan): the
-- registry's new rows (core/employee_key_registry.sql) and the employees' keys (core/hris_employee_key.sql)
-- are selected from it.
-- A steward's decision wins. Otherwise employments sharing an SSO GUID, one after another, are
-- one person (a rehire) and share the lowest key any of them already holds; the same GUID on
-- employments that overlap in time is two people (a collision, reported), never merged.
-- Scoped by %(employee_ids)s (null = every employee); the caller closes the scope over GUIDs.
with scoped as (
    select
        hris_employee_id,
        sso_guid,
        employment_start_date,
        employment_end_date
    from core.identity_employment
    where %(employee_ids)s::text[] is null or hris_employee_id = any(%(employee_ids)s::text[])
),

latest_override as (
    select
        identifier_value as hris_employee_id,
        decision,
        employee_key
    from audit.identity_override_current
    where identifier_type = 'hris_employee_id'
),

guid_members as (
    select scoped.*
    from scoped
    left join latest_override on scoped.hris_employee_id = latest_override.hris_employee_id
    where scoped.sso_guid is not null and latest_override.decision is null
),

colliding_guids as (
    select distinct first_member.sso_guid
    from guid_members as first_member
    inner join guid_members as second_member
        on
            first_member.sso_guid = second_member.sso_guid
            and first_member.hris_employee_id < second_member.hris_employee_id
            and first_member.employment_start_date < coalesce(second_member.employment_end_date, 'infinity')
            and second_member.employment_start_date < coalesce(first_member.employment_end_date, 'infinity')
),

linked_groups as (
    select
        guid_members.sso_guid,
        count(*) as members,
        min(prior_key.employee_key) as lowest_existing_key,
        (
            array_agg(
                guid_members.hris_employee_id order by guid_members.employment_start_date, guid_members.hris_employee_id
            )
        )[1]
            as first_employee_id
    from guid_members
    left join core.hris_employee_key as prior_key on guid_members.hris_employee_id = prior_key.hris_employee_id
    where guid_members.sso_guid not in (select colliding_guids.sso_guid from colliding_guids)
    group by guid_members.sso_guid
    having count(*) > 1
),

planned as (
    select
        scoped.hris_employee_id,
        scoped.employment_start_date,
        prior_key.employee_key as existing_employee_key,
        linked_groups.sso_guid as linked_sso_guid,
        linked_groups.lowest_existing_key as group_employee_key,
        case when latest_override.decision = 'match' then latest_override.employee_key end as override_employee_key,
        -- "not a match": the employment keeps no key that was issued for another employment
        coalesce(
            latest_override.decision = 'not_a_match'
            and prior_registry.issued_for_hris_employee_id <> scoped.hris_employee_id,
            false
        ) as needs_own_key,
        case
            when linked_groups.first_employee_id <> scoped.hris_employee_id then linked_groups.first_employee_id
        end as linked_to_hris_employee_id,
        case
            when latest_override.decision in ('match', 'not_a_match') then 'steward_override'
            when linked_groups.first_employee_id <> scoped.hris_employee_id then 'sso_guid'
            else 'hris_record'
        end as match_method
    from scoped
    left join core.hris_employee_key as prior_key on scoped.hris_employee_id = prior_key.hris_employee_id
    left join core.employee_key_registry as prior_registry on prior_key.employee_key = prior_registry.employee_key
    left join latest_override on scoped.hris_employee_id = latest_override.hris_employee_id
    left join linked_groups on scoped.sso_guid = linked_groups.sso_guid and latest_override.decision is null
),

last_issued as (
    select coalesce(max(employee_key), 0) as last_issued_key
    from core.employee_key_registry
),

classified as (
    select
        planned.*,
        -- without a steward's key: a first employment, the first of a new rehire group, or one split off
        planned.override_employee_key is null
        and (
            (planned.linked_sso_guid is null and planned.existing_employee_key is null)
            or (
                planned.linked_sso_guid is not null
                and planned.group_employee_key is null
                and planned.linked_to_hris_employee_id is null
            )
            or planned.needs_own_key
        ) as is_new_key_needed
    from planned
),

-- New keys continue the registry's sequence in hire order, so a rerun of a failed run issues the
-- same numbers; a key is never reissued.
issued as (
    select
        classified.*,
        case
            when classified.is_new_key_needed
                then
                    last_issued.last_issued_key
                    + row_number() over (
                        partition by classified.is_new_key_needed
                        order by classified.employment_start_date, classified.hris_employee_id
                    )
        end as new_employee_key
    from classified
    cross join last_issued
),

final as (
    select
        hris_employee_id,
        employment_start_date,
        existing_employee_key,
        linked_sso_guid,
        group_employee_key,
        override_employee_key,
        needs_own_key,
        linked_to_hris_employee_id,
        match_method,
        new_employee_key,
        -- a new rehire group takes the new key of its first member (the only member issued one); a window,
        -- not a lookup per member: on an empty layer a lookup on the plan took minutes for 500,000 employees
        coalesce(
            override_employee_key,
            case
                when linked_sso_guid is not null
                    then coalesce(group_employee_key, max(new_employee_key) over (partition by linked_sso_guid))
            end,
            case when needs_own_key then new_employee_key end,
            existing_employee_key,
            new_employee_key
        ) as employee_key
    from issued
)

select * from final
