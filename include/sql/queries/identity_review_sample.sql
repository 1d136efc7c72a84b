-- one row per sampled LMS account: N matches per method and N misses per reason, PII minimized
-- A seeded hash orders the accounts, so the same seed draws the same sample (auditable) and a
-- new seed a fresh one. Emails are shown as their first letter and domain only. A miss with an open
-- suggestion (audit.identity_suggestion) carries its best candidate and score; misses are drawn and shown
-- best suggestion first, so the sample leads with what the steward can decide.
with best_suggestion as (
    select
        lms_user_id,
        suggestion_id,
        employee_key as suggested_employee_key,
        score as suggestion_score
    from audit.identity_suggestion
    where status = 'open' and rank = 1
),

outcomes as (
    select
        account_match.lms_user_id,
        account_match.employee_key,
        account_match.hris_employee_id,
        account_match.is_active,
        account_match.valid_from,
        account_match.valid_to,
        account_match.unmatched_reason,
        directory_account.created_at::date as account_created_date,
        best_suggestion.suggestion_id,
        best_suggestion.suggested_employee_key,
        best_suggestion.suggestion_score,
        coalesce(account_match.match_method, 'unmatched') as match_method,
        directory_account.external_id_normalized is not null as account_has_sso_guid,
        left(directory_account.email_normalized, 1) || '***@' || split_part(directory_account.email_normalized, '@', 2)
            as account_email_masked,
        row_number() over (
            partition by coalesce(account_match.match_method, account_match.unmatched_reason)
            order by
                best_suggestion.suggestion_score desc nulls last,
                md5(%(sample_seed)s::text || account_match.lms_user_id)
        ) as draw
    from core.lms_account_match as account_match
    inner join core.identity_lms_account as directory_account
        on account_match.lms_user_id = directory_account.lms_user_id
    left join best_suggestion on account_match.lms_user_id = best_suggestion.lms_user_id
),

final as (
    select
        outcomes.match_method,
        outcomes.unmatched_reason,
        outcomes.lms_user_id,
        outcomes.employee_key,
        outcomes.hris_employee_id,
        outcomes.is_active,
        outcomes.account_created_date,
        outcomes.account_has_sso_guid,
        outcomes.account_email_masked,
        employment.employment_start_date,
        employment.employment_end_date,
        outcomes.suggestion_id,
        outcomes.suggested_employee_key,
        outcomes.suggestion_score,
        employment.sso_guid is not null as employee_has_sso_guid,
        (
            select left(work_email.email_normalized, 1) || '***@' || split_part(work_email.email_normalized, '@', 2)
            from core.identity_work_email as work_email
            where work_email.hris_employee_id = outcomes.hris_employee_id
            order by work_email.valid_from desc
            limit 1
        ) as employee_email_masked
    from outcomes
    left join core.identity_employment as employment on outcomes.hris_employee_id = employment.hris_employee_id
    where outcomes.draw <= %(per_method)s::integer
)

select * from final
order by match_method asc, unmatched_reason asc, suggestion_score desc nulls last, lms_user_id asc
