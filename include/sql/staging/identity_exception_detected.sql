-- one row per identity conflict detected among the scoped employees and LMS users
-- The id is a hash of the kind and the identifiers involved, so the same conflict keeps its id
-- across runs and a steward's resolution sticks. Evidence holds ids, dates and methods, never
-- an email or a name. Scoped by %(employee_ids)s and %(lms_user_ids)s (null = all).
with account_matches as (
    select *
    from core.lms_account_match
    where %(lms_user_ids)s::text[] is null or lms_user_id = any(%(lms_user_ids)s::text[])
),

scoped_employments as (
    select *
    from core.identity_employment
    where %(employee_ids)s::text[] is null or hris_employee_id = any(%(employee_ids)s::text[])
),

employee_keys as not materialized (
    select
        hris_employee_id,
        employee_key
    from core.hris_employee_key
),

account_claims_two_employees as (
    select
        'lms_account_claims_two_employees' as kind,
        '{}'::text[] as hris_employee_ids,
        array[lms_user_id] as lms_user_ids,
        candidate_employee_keys as employee_keys,
        jsonb_build_object('unmatched_reason', unmatched_reason) as evidence
    from account_matches
    where cardinality(candidate_employee_keys) > 1
),

employee_two_active_accounts as (
    select
        'employee_two_active_lms_accounts' as kind,
        array_agg(distinct all_matches.hris_employee_id order by all_matches.hris_employee_id) as hris_employee_ids,
        array_agg(all_matches.lms_user_id order by all_matches.lms_user_id) as lms_user_ids,
        array[all_matches.employee_key] as employee_keys,
        jsonb_build_object(
            'match_methods', jsonb_agg(all_matches.match_method order by all_matches.lms_user_id)
        ) as evidence
    from core.lms_account_match as all_matches
    where
        all_matches.is_active
        and all_matches.employee_key in (
            select account_matches.employee_key from account_matches
            union all
            select employee_keys.employee_key from employee_keys
            inner join scoped_employments on employee_keys.hris_employee_id = scoped_employments.hris_employee_id
        )
    group by all_matches.employee_key
    having count(*) > 1
),

guid_disagrees_with_email as (
    select
        'sso_guid_disagrees_with_email' as kind,
        '{}'::text[] as hris_employee_ids,
        array[lms_user_id] as lms_user_ids,
        array[sso_employee_key, email_employee_key] as employee_keys,
        jsonb_build_object('matched_by', match_method, 'employee_key_by_sso_guid', sso_employee_key) as evidence
    from account_matches
    where sso_employee_key <> email_employee_key
),

scoped_emails as (
    select work_email.*
    from core.identity_work_email as work_email
    inner join scoped_employments on work_email.hris_employee_id = scoped_employments.hris_employee_id
),

email_overlaps as (
    -- two people's intervals on one address; staggered (one starts and ends before the other) is a
    -- handover whose shared days are ambiguous, one within the other an address shared outright
    select
        first_holder.hris_employee_id as first_hris_employee_id,
        second_holder.hris_employee_id as second_hris_employee_id,
        first_key.employee_key as first_employee_key,
        second_key.employee_key as second_employee_key,
        first_holder.email_normalized,
        greatest(first_holder.valid_from, second_holder.valid_from) as overlap_from,
        nullif(
            least(coalesce(first_holder.valid_to, 'infinity'), coalesce(second_holder.valid_to, 'infinity')),
            'infinity'
        ) as overlap_to,
        (
            first_holder.valid_from < second_holder.valid_from
            and coalesce(first_holder.valid_to, 'infinity') < coalesce(second_holder.valid_to, 'infinity')
        )
        or (
            second_holder.valid_from < first_holder.valid_from
            and coalesce(second_holder.valid_to, 'infinity') < coalesce(first_holder.valid_to, 'infinity')
        ) as is_handover
    from scoped_emails as first_holder
    inner join core.identity_work_email as second_holder
        on
            first_holder.email_normalized = second_holder.email_normalized
            and first_holder.hris_employee_id <> second_holder.hris_employee_id
            and first_holder.valid_from < coalesce(second_holder.valid_to, 'infinity')
            and second_holder.valid_from < coalesce(first_holder.valid_to, 'infinity')
    inner join employee_keys as first_key on first_holder.hris_employee_id = first_key.hris_employee_id
    inner join employee_keys as second_key on second_holder.hris_employee_id = second_key.hris_employee_id
    where first_key.employee_key <> second_key.employee_key
),

email_collisions as (
    select distinct
        case when is_handover then 'email_handover_overlap' else 'email_collision' end as kind,
        array[
            least(first_hris_employee_id, second_hris_employee_id),
            greatest(first_hris_employee_id, second_hris_employee_id)
        ] as hris_employee_ids,
        '{}'::text[] as lms_user_ids,
        array[
            least(first_employee_key, second_employee_key),
            greatest(first_employee_key, second_employee_key)
        ] as employee_keys,
        case
            when is_handover
                then jsonb_build_object(
                    'email_sha256', encode(sha256(convert_to(email_normalized, 'utf8')), 'hex'),
                    'overlap_from', overlap_from,
                    'overlap_to', overlap_to,
                    'ambiguous_days', overlap_to - overlap_from
                )
            else jsonb_build_object(
                'email_sha256', encode(sha256(convert_to(email_normalized, 'utf8')), 'hex'),
                'overlap_from', overlap_from
            )
        end as evidence
    from email_overlaps
),

guid_collisions as (
    select distinct
        'sso_guid_collision' as kind,
        array[
            least(first_holder.hris_employee_id, second_holder.hris_employee_id),
            greatest(first_holder.hris_employee_id, second_holder.hris_employee_id)
        ] as hris_employee_ids,
        '{}'::text[] as lms_user_ids,
        '{}'::bigint[] as employee_keys,
        jsonb_build_object(
            'overlap_from', greatest(first_holder.employment_start_date, second_holder.employment_start_date)
        ) as evidence
    from scoped_employments as first_holder
    inner join core.identity_employment as second_holder
        on
            first_holder.sso_guid = second_holder.sso_guid
            and first_holder.hris_employee_id <> second_holder.hris_employee_id
            and first_holder.employment_start_date < coalesce(second_holder.employment_end_date, 'infinity')
            and second_holder.employment_start_date < coalesce(first_holder.employment_end_date, 'infinity')
),

conflicts as (
    select * from account_claims_two_employees
    union all
    select * from employee_two_active_accounts
    union all
    select * from guid_disagrees_with_email
    union all
    select * from email_collisions
    union all
    select * from guid_collisions
),

final as (
    select
        kind,
        hris_employee_ids,
        lms_user_ids,
        employee_keys,
        evidence,
        md5(
            kind || '|' || array_to_string(hris_employee_ids, ',') || '|' || array_to_string(lms_user_ids, ',')
            || '|' || array_to_string(employee_keys, ',')
        ) as exception_id
    from conflicts
)

select * from final
