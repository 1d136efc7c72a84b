-- one row per employee_key per source identifier per validity interval [valid_from, valid_to)
-- Every identifier is tied to the employment (hris_employee_id) it belongs to and valid only
-- while that employment lasts, so activity after a leave date or before a hire date never
-- attaches to anyone through it. Built for the scoped employees, LMS users and xAPI actors
-- (%(employee_ids)s, %(lms_user_ids)s, %(learner_identifiers)s; null = all). known_at: when the link became
-- possible, for links through an LMS account (its match's known_at); the others follow from the HR
-- history and the actor's own statements, which carry their own knowledge times (null here).
-- The CTEs used more than once are inlined (not materialized): a run over a few thousand scoped
-- identifiers then reaches them through indexes instead of materializing whole tables.
with employments as not materialized (
    select
        employee_key.employee_key,
        employee_key.match_method,
        employment.hris_employee_id,
        employment.sso_guid,
        employment.employment_start_date,
        employment.employment_end_date
    from core.identity_employment as employment
    inner join core.hris_employee_key as employee_key
        on employment.hris_employee_id = employee_key.hris_employee_id
),

scoped_employments as (
    select *
    from employments
    where %(employee_ids)s::text[] is null or hris_employee_id = any(%(employee_ids)s::text[])
),

work_email_holders as not materialized (
    select
        work_email.*,
        employments.employee_key,
        employments.sso_guid
    from core.identity_work_email as work_email
    inner join employments on work_email.hris_employee_id = employments.hris_employee_id
),

work_emails as not materialized (
    -- An address two people hold at once identifies neither of them while they share it. When it was
    -- handed over (one holder's interval starts and ends before the other's: a leaver still listed
    -- while the next holder is already listed before the hire date), only the shared days are
    -- ambiguous (email_handover_overlap): the address stays the earlier holder's before them and the
    -- later holder's after them. When one interval lies within the other, nothing shows a handover (a
    -- shared mailbox or an HR data error, email_collision): the address identifies neither at any time.
    select
        holder.hris_employee_id,
        holder.email_normalized,
        holder.work_email_raw,
        holder.mbox_sha1sum,
        holder.employee_key,
        holder.sso_guid,
        lower(held.days) as valid_from,
        upper(held.days) as valid_to
    from work_email_holders as holder
    cross join
        lateral (
            select
                -- true when no other holder overlaps, or each overlap is staggered (a handover)
                coalesce(bool_and(
                    (
                        other_holder.valid_from < holder.valid_from
                        and coalesce(other_holder.valid_to, 'infinity') < coalesce(holder.valid_to, 'infinity')
                    )
                    or (
                        holder.valid_from < other_holder.valid_from
                        and coalesce(holder.valid_to, 'infinity') < coalesce(other_holder.valid_to, 'infinity')
                    )
                ), true) as is_handed_over,
                coalesce(
                    range_agg(daterange(other_holder.valid_from, other_holder.valid_to)), '{}'::datemultirange
                ) as days_held_by_others
            from core.identity_work_email as other_holder
            inner join core.hris_employee_key as other_key on other_holder.hris_employee_id = other_key.hris_employee_id
            where
                other_holder.email_normalized = holder.email_normalized
                and other_key.employee_key <> holder.employee_key
                and other_holder.valid_from < coalesce(holder.valid_to, 'infinity')
                and holder.valid_from < coalesce(other_holder.valid_to, 'infinity')
        ) as other_holders
    cross join
        lateral unnest(
            datemultirange(daterange(holder.valid_from, holder.valid_to)) - other_holders.days_held_by_others
        ) as held (days)
    where other_holders.is_handed_over
),

guid_holders as not materialized (
    -- likewise a GUID on two people's overlapping employments (sso_guid_collision)
    select *
    from employments
    where
        sso_guid is not null
        and not exists (
            select from core.identity_employment as other_employment
            inner join core.hris_employee_key as other_key
                on other_employment.hris_employee_id = other_key.hris_employee_id
            where
                other_employment.sso_guid = employments.sso_guid
                and other_key.employee_key <> employments.employee_key
                and other_employment.employment_start_date < coalesce(employments.employment_end_date, 'infinity')
                and employments.employment_start_date < coalesce(other_employment.employment_end_date, 'infinity')
        )
),

matched_accounts as not materialized (
    -- An account matched by email belongs to the one employment it was opened in: the address may
    -- be reissued to someone else after a leave. An account matched by evidence about the person
    -- (the SSO GUID, a steward's employee_key) goes with them into every employment of their key,
    -- each over its own interval: a rehire who keeps the account keeps its activity, and the gap
    -- between two employments stays nobody's. One join on the key (indexed), the rule a filter:
    -- neither an OR join nor a union of two joins (a join condition does not reach into a union's
    -- branches), so a scoped run reaches the accounts of its xAPI actors by primary key.
    select
        account_match.lms_user_id,
        account_match.match_method,
        account_match.known_at,
        employments.employee_key,
        employments.hris_employee_id,
        employments.sso_guid,
        employments.employment_start_date as valid_from,
        employments.employment_end_date as valid_to
    from core.lms_account_match as account_match
    inner join employments on account_match.employee_key = employments.employee_key
    where
        account_match.match_method in ('sso_guid', 'steward_override')
        or account_match.hris_employee_id = employments.hris_employee_id
),

scoped_learners as (
    select *
    from core.identity_learner
    where
        %(learner_identifiers)s::text[] is null
        or learner_identifier = any(%(learner_identifiers)s::text[])
),

employee_ids as (
    select
        employee_key,
        'hris_employee_id' as identifier_type,
        hris_employee_id as identifier_value,
        hris_employee_id,
        null as lms_user_id,
        sso_guid,
        null as work_email_normalized,
        match_method,
        employment_start_date as valid_from,
        employment_end_date as valid_to,
        null::timestamptz as known_at
    from scoped_employments
),

sso_guids as (
    select
        employee_key,
        'sso_guid' as identifier_type,
        sso_guid as identifier_value,
        hris_employee_id,
        null as lms_user_id,
        sso_guid,
        null as work_email_normalized,
        'hris_record' as match_method,
        employment_start_date as valid_from,
        employment_end_date as valid_to,
        null::timestamptz as known_at
    from guid_holders
    where %(employee_ids)s::text[] is null or hris_employee_id = any(%(employee_ids)s::text[])
),

work_email_addresses as (
    select
        work_emails.employee_key,
        'work_email' as identifier_type,
        work_emails.email_normalized as identifier_value,
        work_emails.hris_employee_id,
        null as lms_user_id,
        work_emails.sso_guid,
        work_emails.email_normalized as work_email_normalized,
        'hris_record' as match_method,
        work_emails.valid_from,
        work_emails.valid_to,
        null::timestamptz as known_at
    from work_emails
    where %(employee_ids)s::text[] is null or work_emails.hris_employee_id = any(%(employee_ids)s::text[])
),

lms_user_ids as (
    select
        employee_key,
        'lms_user_id' as identifier_type,
        lms_user_id as identifier_value,
        hris_employee_id,
        lms_user_id,
        sso_guid,
        null as work_email_normalized,
        match_method,
        valid_from,
        valid_to,
        known_at
    from matched_accounts
    where %(lms_user_ids)s::text[] is null or lms_user_id = any(%(lms_user_ids)s::text[])
),

xapi_lms_accounts as (
    -- an account actor names an LMS user: it follows that user's match
    select
        matched_accounts.employee_key,
        'xapi_actor' as identifier_type,
        scoped_learners.learner_identifier as identifier_value,
        matched_accounts.hris_employee_id,
        matched_accounts.lms_user_id,
        matched_accounts.sso_guid,
        null as work_email_normalized,
        matched_accounts.match_method,
        matched_accounts.valid_from,
        matched_accounts.valid_to,
        matched_accounts.known_at
    from scoped_learners
    inner join matched_accounts on scoped_learners.account_name = matched_accounts.lms_user_id
),

xapi_sso_accounts as (
    -- an account actor whose name is the SSO GUID (LMSs that key learners by their IdP subject)
    select
        guid_holders.employee_key,
        'xapi_actor' as identifier_type,
        scoped_learners.learner_identifier as identifier_value,
        guid_holders.hris_employee_id,
        null as lms_user_id,
        guid_holders.sso_guid,
        null as work_email_normalized,
        'sso_guid' as match_method,
        guid_holders.employment_start_date as valid_from,
        guid_holders.employment_end_date as valid_to,
        null::timestamptz as known_at
    from scoped_learners
    inner join guid_holders on lower(scoped_learners.account_name) = guid_holders.sso_guid
    where not exists (
        select from core.identity_lms_account as directory_account
        where directory_account.lms_user_id = scoped_learners.account_name
    )
),

learner_addresses as (
    -- an mbox names an address; an mbox_sha1sum names the address whose sha1 it is
    select
        learner_identifier,
        email_normalized
    from scoped_learners
    where email_normalized is not null
    union
    select
        scoped_learners.learner_identifier,
        hashed_address.email_normalized
    from scoped_learners
    inner join core.identity_work_email as hashed_address
        on scoped_learners.mbox_sha1sum = hashed_address.mbox_sha1sum
),

xapi_mboxes as (
    -- an address belongs to whoever held it at the time
    select
        work_emails.employee_key,
        'xapi_actor' as identifier_type,
        learner_addresses.learner_identifier as identifier_value,
        work_emails.hris_employee_id,
        null as lms_user_id,
        work_emails.sso_guid,
        work_emails.email_normalized as work_email_normalized,
        'work_email' as match_method,
        work_emails.valid_from,
        work_emails.valid_to,
        null::timestamptz as known_at
    from learner_addresses
    inner join work_emails on learner_addresses.email_normalized = work_emails.email_normalized
),

identifiers as (
    select * from employee_ids
    union all
    select * from sso_guids
    union all
    select * from work_email_addresses
    union all
    select * from lms_user_ids
    union all
    select * from xapi_lms_accounts
    union all
    select * from xapi_sso_accounts
    union all
    select * from xapi_mboxes
),

final as (
    select
        *,
        %(rule_version)s::integer as rule_version
    from identifiers
)

select * from final
