-- one row per LMS user in scope: its employee by the first rule that decides, or why none does
-- Precedence: steward override, SSO GUID (SCIM externalId), an LMS id recorded in the HRIS, work
-- email as it was when the account was created (an address recycled after a leaver belongs to
-- whoever held it then). A rule that
-- finds two different people decides "ambiguous" rather than guessing. Scoped by %(lms_user_ids)s.
with accounts as (
    select *
    from core.identity_lms_account
    where %(lms_user_ids)s::text[] is null or lms_user_id = any(%(lms_user_ids)s::text[])
),

employments as not materialized (
    -- inlined where used, so that the scoped accounts reach it through indexes
    select
        employment.hris_employee_id,
        employment.sso_guid,
        employment.lms_user_id,
        employment.employment_start_date,
        employment.employment_end_date,
        employee_key.employee_key
    from core.identity_employment as employment
    inner join core.hris_employee_key as employee_key
        on employment.hris_employee_id = employee_key.hris_employee_id
),

latest_override as (
    select
        identifier_value as lms_user_id,
        decision,
        employee_key,
        decided_at
    from audit.identity_override_current
    where identifier_type = 'lms_user_id'
),

override_candidates as (
    select
        accounts.lms_user_id,
        1 as rule_rank,
        'steward_override' as match_method,
        employments.employee_key,
        employments.hris_employee_id,
        employments.employment_start_date,
        employments.employment_end_date
    from accounts
    inner join latest_override on accounts.lms_user_id = latest_override.lms_user_id
    inner join employments on latest_override.employee_key = employments.employee_key
    where latest_override.decision = 'match'
),

sso_candidates as (
    select
        accounts.lms_user_id,
        2 as rule_rank,
        'sso_guid' as match_method,
        employments.employee_key,
        employments.hris_employee_id,
        employments.employment_start_date,
        employments.employment_end_date
    from accounts
    inner join employments on accounts.external_id_normalized = employments.sso_guid
),

hris_recorded_candidates as (
    -- the LMS user id the HRIS records for the worker (optional column of the employees feed)
    select
        accounts.lms_user_id,
        3 as rule_rank,
        'hris_lms_user_id' as match_method,
        employments.employee_key,
        employments.hris_employee_id,
        employments.employment_start_date,
        employments.employment_end_date
    from accounts
    inner join employments on accounts.lms_user_id = employments.lms_user_id
),

email_holders as (
    select
        accounts.lms_user_id,
        accounts.created_at,
        work_email.email_normalized,
        work_email.valid_from,
        work_email.valid_to,
        employments.employee_key,
        employments.hris_employee_id,
        employments.employment_start_date,
        employments.employment_end_date
    from accounts
    inner join core.identity_work_email as work_email
        on work_email.email_normalized in (accounts.email_normalized, accounts.primary_email_normalized)
    inner join employments on work_email.hris_employee_id = employments.hris_employee_id
),

email_candidates as (
    select
        lms_user_id,
        4 as rule_rank,
        'work_email' as match_method,
        employee_key,
        hris_employee_id,
        employment_start_date,
        employment_end_date
    from email_holders
    where
        created_at::date < coalesce(valid_to, 'infinity')
        and (
            created_at::date >= valid_from
            -- A pre-boarding account, opened in the grace days before the address was the holder's, but
            -- only on a day nobody else held it: a reassigned address's earlier holder keeps the accounts
            -- opened in their time (the days two people held it stay ambiguous: both are candidates).
            or (
                created_at::date >= valid_from - %(created_before_hire_grace_days)s::integer
                and not exists (
                    select from core.identity_work_email as other_holder
                    inner join core.hris_employee_key as other_key
                        on other_holder.hris_employee_id = other_key.hris_employee_id
                    where
                        other_holder.email_normalized = email_holders.email_normalized
                        and other_key.employee_key <> email_holders.employee_key
                        and other_holder.valid_from <= email_holders.created_at::date
                        and email_holders.created_at::date < coalesce(other_holder.valid_to, 'infinity')
                )
            )
        )
),

candidates as (
    select * from override_candidates
    union all
    select * from sso_candidates
    union all
    select * from hris_recorded_candidates
    union all
    select * from email_candidates
),

rule_verdicts as (
    select
        lms_user_id,
        rule_rank,
        min(match_method) as match_method,
        array_agg(distinct employee_key order by employee_key) as employee_keys
    from candidates
    group by lms_user_id, rule_rank
),

deciding_rule as (
    select distinct on (lms_user_id) *
    from rule_verdicts
    order by lms_user_id asc, rule_rank asc
),

chosen_employment as (
    -- One person may have several employments (a rehire): the one the account was opened in.
    select distinct on (candidates.lms_user_id)
        candidates.lms_user_id,
        candidates.employee_key,
        candidates.hris_employee_id,
        candidates.employment_start_date,
        candidates.employment_end_date
    from candidates
    inner join deciding_rule
        on
            candidates.lms_user_id = deciding_rule.lms_user_id
            and candidates.rule_rank = deciding_rule.rule_rank
            and cardinality(deciding_rule.employee_keys) = 1
    inner join accounts on candidates.lms_user_id = accounts.lms_user_id
    order by
        candidates.lms_user_id asc,
        (
            accounts.created_at::date >= candidates.employment_start_date
            and (candidates.employment_end_date is null or accounts.created_at::date < candidates.employment_end_date)
        ) desc,
        (candidates.employment_start_date <= accounts.created_at::date) desc,
        candidates.employment_start_date desc
),

holders_at_other_times as (
    select distinct lms_user_id from email_holders
),

verdicts as (
    select
        accounts.*,
        latest_override.decision as steward_decision,
        latest_override.decided_at as steward_decided_at,
        deciding_rule.rule_rank,
        deciding_rule.match_method as deciding_method,
        deciding_rule.employee_keys as deciding_keys,
        chosen_employment.employee_key as chosen_employee_key,
        chosen_employment.hris_employee_id as chosen_hris_employee_id,
        chosen_employment.employment_start_date,
        chosen_employment.employment_end_date,
        holders_at_other_times.lms_user_id is not null as has_email_holder_at_other_times,
        -- A steward's "not a match", or a steward's key without an employment, blocks every rule.
        coalesce(
            latest_override.decision = 'not_a_match'
            or (latest_override.decision = 'match' and deciding_rule.rule_rank is distinct from 1),
            false
        ) as is_blocked_by_steward,
        case when cardinality(sso_verdict.employee_keys) = 1 then sso_verdict.employee_keys[1] end
            as sso_employee_key,
        case when cardinality(email_verdict.employee_keys) = 1 then email_verdict.employee_keys[1] end
            as email_employee_key
    from accounts
    left join latest_override on accounts.lms_user_id = latest_override.lms_user_id
    left join deciding_rule on accounts.lms_user_id = deciding_rule.lms_user_id
    left join chosen_employment on accounts.lms_user_id = chosen_employment.lms_user_id
    left join holders_at_other_times on accounts.lms_user_id = holders_at_other_times.lms_user_id
    left join rule_verdicts as sso_verdict
        on accounts.lms_user_id = sso_verdict.lms_user_id and sso_verdict.rule_rank = 2
    left join rule_verdicts as email_verdict
        on accounts.lms_user_id = email_verdict.lms_user_id and email_verdict.rule_rank = 4
),

final as (
    select
        lms_user_id,
        is_active,
        is_corporate_email,
        sso_employee_key,
        email_employee_key,
        %(rule_version)s::integer as rule_version,
        case when not is_blocked_by_steward then chosen_employee_key end as employee_key,
        case when not is_blocked_by_steward then chosen_hris_employee_id end as hris_employee_id,
        case when not is_blocked_by_steward and chosen_employee_key is not null then deciding_method end
            as match_method,
        case
            when steward_decision = 'not_a_match' then 'steward_not_a_match'
            when is_blocked_by_steward then 'steward_key_has_no_employment'
            when chosen_employee_key is not null then null
            when cardinality(deciding_keys) > 1 then 'ambiguous_' || deciding_method
            when has_email_holder_at_other_times then 'email_holder_not_employed_when_account_created'
            when external_id_normalized is not null and is_corporate_email then 'identifiers_not_in_hris'
            when external_id_normalized is not null then 'sso_guid_not_in_hris'
            when is_corporate_email then 'email_not_in_hris'
            else 'no_corporate_identifier'
        end as unmatched_reason,
        case when not is_blocked_by_steward then employment_start_date end as valid_from,
        case when not is_blocked_by_steward then employment_end_date end as valid_to,
        coalesce(deciding_keys, '{}') as candidate_employee_keys,
        -- when the match became possible: a steward's decision when taken, the others once the directory
        -- showed the identifiers it rests on (features count the account's activity only from then on)
        case
            when deciding_method = 'steward_override' then steward_decided_at
            else identifiers_known_at
        end as known_at
    from verdicts
)

select * from final
