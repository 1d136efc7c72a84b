-- one row per (LMS account the rules left unmatched, candidate employee_key): comparisons and match weight
-- Fellegi–Sunter: each comparison falls into a level whose weight is log2(m / u), m the level's share among
-- true pairs and u among random pairs; the match weight adds a prior of one in the number of employees. The
-- m and u values are priors written into `weighed` below, except u of an exact name, which is that name's
-- frequency among employees (a rare name weighs more, a namesake's less). Blocking brings together an
-- account and the employees sharing its family name and first initial (or its sound, with the same first
-- name) or an email local part within one edit. Accounts on a contractor domain are never scored: a
-- contractor is not an employee, however alike the names. Bound: the account reasons, domain lists and grace
-- days (identity settings).
with unmatched_accounts as (
    select
        account_match.lms_user_id,
        account_match.unmatched_reason
    from core.lms_account_match as account_match
    where
        account_match.employee_key is null
        and account_match.unmatched_reason = any(%(suggestion_reasons)s::text[])
        -- a steward already decided about this account: nothing to suggest
        and not exists (
            select from audit.identity_override_current as decided
            where decided.identifier_type = 'lms_user_id' and decided.identifier_value = account_match.lms_user_id
        )
),

directory_accounts as (
    select
        unmatched_accounts.lms_user_id,
        unmatched_accounts.unmatched_reason,
        directory.created_at::date as created_date,
        regexp_replace(btrim(coalesce(directory.work_email, directory.primary_email)), '^mailto:', '', 'i') as address,
        nullif(lower(regexp_replace(directory.resource -> 'name' ->> 'givenName', '[^[:alpha:]]', '', 'g')), '')
            as first_name,
        nullif(lower(regexp_replace(directory.resource -> 'name' ->> 'familyName', '[^[:alpha:]]', '', 'g')), '')
            as last_name
    from unmatched_accounts
    inner join raw.lms_user as directory
        on unmatched_accounts.lms_user_id = directory.lms_user_id and directory.valid_to is null
),

classified_accounts as (
    select
        lms_user_id,
        unmatched_reason,
        created_date,
        first_name,
        last_name,
        nullif(split_part(lower(split_part(address, '@', 1)), '+', 1), '') as local_part,
        case
            when lower(split_part(address, '@', 2)) = any(%(corporate_domains)s::text[]) then 'corporate'
            when %(domain_aliases)s::jsonb ? lower(split_part(address, '@', 2)) then 'alias'
            when lower(split_part(address, '@', 2)) = any(%(contractor_domains)s::text[]) then 'contractor'
            when address ~ '^[^@]+@[^@]+$' then 'personal'
            else 'none'
        end as domain_class
    from directory_accounts
),

scored_accounts as (
    select * from classified_accounts
    where domain_class <> 'contractor'
),

employments as (
    select
        employment.hris_employee_id,
        employee_key.employee_key,
        employment.employment_start_date,
        employment.employment_end_date
    from core.identity_employment as employment
    inner join core.hris_employee_key as employee_key
        on employment.hris_employee_id = employee_key.hris_employee_id
),

employee_names as (
    -- each employment's latest name in the HR history, in the accounts' normal form
    select distinct on (history.employee_id)
        history.employee_id as hris_employee_id,
        nullif(lower(regexp_replace(history.first_name, '[^[:alpha:]]', '', 'g')), '') as first_name,
        nullif(lower(regexp_replace(history.last_name, '[^[:alpha:]]', '', 'g')), '') as last_name
    from core.employee_history as history
    order by history.employee_id asc, history.valid_from desc
),

named_employments as (
    select
        employments.*,
        employee_names.first_name,
        employee_names.last_name
    from employments
    inner join employee_names on employments.hris_employee_id = employee_names.hris_employee_id
),

population as (
    select count(distinct employee_key)::float8 as employee_keys from named_employments
),

name_frequency as (
    -- how many people carry each full name and each family name (term frequencies)
    select
        first_name,
        last_name,
        count(distinct employee_key) as holders
    from named_employments
    group by first_name, last_name
),

family_name_frequency as (
    select
        last_name,
        count(distinct employee_key) as holders
    from named_employments
    group by last_name
),

employees as materialized (
    select
        named_employments.*,
        name_frequency.holders as name_holders,
        family_name_frequency.holders as family_name_holders,
        left(named_employments.first_name, 1) as first_initial,
        dmetaphone(named_employments.last_name) as last_name_sound
    from named_employments
    -- left joins: an employee without a name in the HR history is still reached through the email
    left join name_frequency
        on
            named_employments.first_name = name_frequency.first_name
            and named_employments.last_name = name_frequency.last_name
    left join family_name_frequency on named_employments.last_name = family_name_frequency.last_name
),

employee_local_parts as (
    select distinct
        hris_employee_id,
        split_part(email_normalized, '@', 1) as local_part
    from core.identity_work_email
),

account_local_part_variants as (
    -- the deletion neighbourhood: the local part and each string one deleted character away from it; two
    -- local parts within one edit (a letter inserted, dropped or replaced) share a variant, so an equality
    -- join finds them without comparing every account with every address (bytewise: a million variants
    -- sort faster than under the database's collation)
    select
        lms_user_id,
        local_part collate "C" as variant
    from scored_accounts
    where local_part is not null
    union
    select
        scored_accounts.lms_user_id,
        overlay(scored_accounts.local_part placing '' from deleted.position for 1) collate "C" as variant
    from scored_accounts
    cross join lateral generate_series(1, length(scored_accounts.local_part)) as deleted (position)
    where length(scored_accounts.local_part) > 1
),

held_local_part_variants as (
    select
        local_part,
        local_part collate "C" as variant
    from (select distinct local_part from employee_local_parts) as held
    union all
    select
        held.local_part,
        overlay(held.local_part placing '' from deleted.position for 1) collate "C" as variant
    from (select distinct local_part from employee_local_parts) as held
    cross join lateral generate_series(1, length(held.local_part)) as deleted (position)
    where length(held.local_part) > 1
),

blocked_pairs as (
    -- Blocks stay small where names repeat (the commonest family names are held by one person in a hundred):
    -- the family name with the first initial, the family name's sound with the first name, or an email
    -- local part within one edit of one the employee held.
    select
        scored_accounts.lms_user_id,
        employees.hris_employee_id
    from scored_accounts
    inner join employees
        on
            scored_accounts.last_name = employees.last_name
            and left(scored_accounts.first_name, 1) = employees.first_initial
    union
    select
        scored_accounts.lms_user_id,
        employees.hris_employee_id
    from scored_accounts
    inner join employees
        on
            dmetaphone(scored_accounts.last_name) = employees.last_name_sound
            and scored_accounts.first_name = employees.first_name
    union
    select
        account_local_part_variants.lms_user_id,
        employee_local_parts.hris_employee_id
    from account_local_part_variants
    inner join held_local_part_variants on account_local_part_variants.variant = held_local_part_variants.variant
    inner join employee_local_parts on held_local_part_variants.local_part = employee_local_parts.local_part
),

pair_edits as (
    -- the fewest edits between the account's local part and any the candidate held
    select
        blocked_pairs.lms_user_id,
        blocked_pairs.hris_employee_id,
        min(levenshtein(scored_accounts.local_part, split_part(held.email_normalized, '@', 1))) as local_part_edits
    from blocked_pairs
    inner join scored_accounts on blocked_pairs.lms_user_id = scored_accounts.lms_user_id
    left join core.identity_work_email as held on blocked_pairs.hris_employee_id = held.hris_employee_id
    group by blocked_pairs.lms_user_id, blocked_pairs.hris_employee_id
),

compared as materialized (
    select
        scored_accounts.lms_user_id,
        scored_accounts.unmatched_reason,
        scored_accounts.domain_class,
        scored_accounts.created_date,
        employees.employee_key,
        employees.hris_employee_id,
        employees.employment_start_date,
        employees.employment_end_date,
        employees.name_holders,
        employees.family_name_holders,
        pair_edits.local_part_edits,
        similarity(
            scored_accounts.first_name || ' ' || scored_accounts.last_name,
            employees.first_name || ' ' || employees.last_name
        ) as name_similarity,
        case
            when scored_accounts.first_name is null or scored_accounts.last_name is null then 'missing'
            when
                scored_accounts.first_name = employees.first_name
                and scored_accounts.last_name = employees.last_name
                then 'exact'
            when
                scored_accounts.last_name = employees.last_name
                and left(scored_accounts.first_name, 1) = left(employees.first_name, 1)
                then 'family_name_and_initial'
            when
                similarity(
                    scored_accounts.first_name || ' ' || scored_accounts.last_name,
                    employees.first_name || ' ' || employees.last_name
                ) >= 0.5
                then 'similar'
            else 'different'
        end as name_level,
        -- Accounts are provisioned at the hire (SCIM, onboarding courses): one opened in the pre-boarding grace
        -- days or the first two weeks points at few employees, and a namesake hired years apart is not one
        -- of them. Opened later while the candidate was employed fits anyone employed then; outside, nobody.
        case
            when
                scored_accounts.created_date
                < employees.employment_start_date - %(created_before_hire_grace_days)s::integer
                or scored_accounts.created_date > employees.employment_end_date
                then 'created_outside'
            when scored_accounts.created_date <= employees.employment_start_date + 14 then 'created_at_hire'
            else 'created_during'
        end as employment_level
    from pair_edits
    inner join scored_accounts on pair_edits.lms_user_id = scored_accounts.lms_user_id
    inner join employees on pair_edits.hris_employee_id = employees.hris_employee_id
),

weighed as (
    select
        compared.*,
        case
            when compared.local_part_edits is null then 'missing'
            when compared.local_part_edits = 0 then 'exact'
            when compared.local_part_edits = 1 then 'one_edit'
            when compared.local_part_edits = 2 then 'two_edits'
            else 'different'
        end as email_level,
        -- m / u per level; u of an exact name is its frequency, of a family name match its family's
        ln(case compared.name_level
            when 'exact' then 0.80 * population.employee_keys / compared.name_holders
            when 'family_name_and_initial' then 0.10 * population.employee_keys / (0.1 * compared.family_name_holders)
            when 'similar' then 0.05 / 0.002
            when 'different' then 0.05 / 0.99
            else 1
        end) / ln(2) as name_weight,
        -- On a corporate domain the local part was issued to one person: a typo is one edit from it, while a
        -- namesake's address (`jane.doe2` beside `jane.doe`) is often two. On a personal domain the person
        -- chose it, mostly from the name (`jane.doe`, `jdoe42`): it says little beyond the name, and its
        -- likeness to one namesake's corporate address rather than another's says nothing.
        ln((case
            when compared.local_part_edits is null then 1
            when compared.domain_class in ('corporate', 'alias') and compared.local_part_edits = 0 then 0.55 / 0.0002
            when compared.domain_class in ('corporate', 'alias') and compared.local_part_edits = 1 then 0.35 / 0.001
            when compared.domain_class in ('corporate', 'alias') and compared.local_part_edits = 2 then 0.02 / 0.02
            when compared.domain_class in ('corporate', 'alias') then 0.08 / 0.979
            when compared.local_part_edits = 0 then 0.40 / 0.05
            when compared.local_part_edits = 1 then 0.25 / 0.05
            when compared.local_part_edits = 2 then 0.15 / 0.10
            else 0.20 / 0.80
        end)::float8) / ln(2) as email_weight,
        ln((case compared.domain_class
            when 'corporate' then 0.85 / 0.60
            when 'alias' then 0.10 / 0.05
            when 'personal' then 0.05 / 0.35
            else 1
        end)::float8) / ln(2) as domain_weight,
        ln((case compared.employment_level
            when 'created_at_hire' then 0.55 / 0.02
            when 'created_during' then 0.43 / 0.58
            else 0.02 / 0.40
        end)::float8) / ln(2) as employment_weight,
        -ln(population.employee_keys) / ln(2) as prior_weight
    from compared
    cross join population
),

summed as (
    select
        *,
        prior_weight + name_weight + email_weight + domain_weight + employment_weight as match_weight
    from weighed
),

final as (
    -- one row per employee_key: the employment whose comparison weighs most (a rehire has several); the
    -- evidence of the few kept is assembled by the queue's query (audit/identity_suggestion.sql)
    select distinct on (lms_user_id, employee_key)
        lms_user_id,
        employee_key,
        hris_employee_id,
        unmatched_reason,
        prior_weight,
        name_level,
        name_weight,
        name_similarity,
        name_holders,
        email_level,
        email_weight,
        local_part_edits,
        domain_class,
        domain_weight,
        employment_level,
        employment_weight,
        created_date,
        employment_start_date,
        employment_end_date,
        round(match_weight::numeric, 3) as match_weight
    from summed
    order by lms_user_id asc, employee_key asc, match_weight desc, hris_employee_id asc
)

select * from final
