-- one row: a run's reconciliation KPIs and the invariants the identity gate checks
-- The overlap and several-keys checks cover the scoped identifiers (%(employee_ids)s, %(lms_user_ids)s,
-- %(learner_identifiers)s; null = all): rows outside the scope were checked when they were written.
-- Counts stay global, each one pass over its table.
with scoped_rows as (
    select *
    from core.employee_identity
    where
        %(employee_ids)s::text[] is null
        or hris_employee_id = any(%(employee_ids)s::text[])
        or lms_user_id = any(%(lms_user_ids)s::text[])
        or (identifier_type = 'xapi_actor' and identifier_value = any(%(learner_identifiers)s::text[]))
),

overlapping_identifiers as (
    select count(distinct scoped_rows.identifier_type || ':' || scoped_rows.identifier_value) as identifiers
    from scoped_rows
    inner join core.employee_identity as other_row
        on
            scoped_rows.identifier_type = other_row.identifier_type
            and scoped_rows.identifier_value = other_row.identifier_value
            and scoped_rows.employee_key <> other_row.employee_key
            and scoped_rows.valid_from < coalesce(other_row.valid_to, 'infinity')
            and other_row.valid_from < coalesce(scoped_rows.valid_to, 'infinity')
),

employees_with_several_keys as (
    -- an employee's hris_employee_id rows are only ever written while it is in scope
    select count(*) as employees
    from (
        select hris_employee_id
        from scoped_rows
        where identifier_type = 'hris_employee_id'
        group by hris_employee_id
        having count(distinct employee_key) > 1
    ) as several
),

canonical_employees as (
    -- Keys are counted here, not in core.hris_employee_key, which keeps the key of an employee gone
    -- from the HR history (reserved should HR restore them) after their identity rows are removed.
    select
        count(distinct identifier_value) as employees,
        count(distinct employee_key) as employee_keys
    from core.employee_identity
    where identifier_type = 'hris_employee_id'
),

account_groups as (
    -- one pass over the matches; every account KPI below sums these groups
    select
        is_active,
        match_method,
        unmatched_reason,
        count(*) as user_count,
        count(employee_key) as matched_count
    from core.lms_account_match
    group by is_active, match_method, unmatched_reason
),

account_outcomes as (
    select
        coalesce(sum(user_count), 0) as lms_users,
        coalesce(sum(matched_count), 0) as lms_users_matched,
        coalesce(sum(user_count) filter (where is_active), 0) as active_lms_users,
        coalesce(sum(matched_count) filter (where is_active), 0) as active_lms_users_matched,
        -- A steward's "not a match" is a decision, not a miss: it leaves the denominator.
        coalesce(sum(user_count) filter (
            where
            is_active
            and unmatched_reason is distinct from 'no_corporate_identifier'
            and unmatched_reason is distinct from 'steward_not_a_match'
        ), 0) as active_corporate_lms_users,
        coalesce(sum(matched_count) filter (where is_active), 0) as active_corporate_lms_users_matched
    from account_groups
),

unmatched_reasons as (
    select coalesce(jsonb_object_agg(unmatched_reason, user_count), '{}') as by_reason
    from (
        select
            unmatched_reason,
            sum(user_count) as user_count
        from account_groups
        where unmatched_reason is not null
        group by unmatched_reason
    ) as counted
),

match_methods as (
    select coalesce(jsonb_object_agg(match_method, user_count), '{}') as by_method
    from (
        select
            match_method,
            sum(user_count) as user_count
        from account_groups
        where match_method is not null
        group by match_method
    ) as counted
),

open_exceptions as (
    select coalesce(jsonb_object_agg(kind, exceptions), '{}') as by_kind
    from (
        select
            kind,
            count(*) as exceptions
        from audit.identity_exception
        where status = 'open'
        group by kind
    ) as counted
),

statements as (
    select count(*) as statements
    from core.lms_activity
    where not is_voided
),

attributable_statements as (
    -- a semi-join (in WHERE, unlike a FILTER clause) is one hashed pass, not a probe per statement
    select count(*) as statements
    from core.lms_activity as activity
    where
        not activity.is_voided
        and exists (
            select from core.employee_identity as identity_row
            where
                identity_row.identifier_type = 'xapi_actor'
                and identity_row.identifier_value = activity.learner_identifier
                and identity_row.valid_from <= (activity.occurred_at at time zone 'UTC')::date
                and (
                    identity_row.valid_to is null
                    or (activity.occurred_at at time zone 'UTC')::date < identity_row.valid_to
                )
        )
),

final as (
    select
        account_outcomes.lms_users::integer,
        account_outcomes.lms_users_matched::integer,
        unmatched_reasons.by_reason as lms_users_unmatched_by_reason,
        match_methods.by_method as lms_users_matched_by_method,
        account_outcomes.active_lms_users::integer,
        account_outcomes.active_corporate_lms_users::integer,
        statements.statements::integer,
        attributable_statements.statements::integer as statements_attributable,
        open_exceptions.by_kind as open_exceptions_by_kind,
        canonical_employees.employees::integer as canonical_headcount,
        canonical_employees.employee_keys::integer,
        employees_with_several_keys.employees::integer as employees_with_several_keys,
        (select count(distinct history_row.employee_id) from core.employee_history as history_row)::integer
            as hris_headcount,
        (select overlapping_identifiers.identifiers from overlapping_identifiers
        )::integer as identifiers_owned_by_two_keys,
        round(account_outcomes.active_lms_users_matched::numeric / nullif(account_outcomes.active_lms_users, 0), 6)
            as active_match_rate,
        round(
            account_outcomes.active_corporate_lms_users_matched::numeric
            / nullif(account_outcomes.active_corporate_lms_users, 0),
            6
        ) as active_corporate_match_rate
    from
        account_outcomes, unmatched_reasons, match_methods, open_exceptions, statements, attributable_statements,
        canonical_employees, employees_with_several_keys
)

select * from final
