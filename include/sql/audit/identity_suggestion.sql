-- one row per (LMS account, candidate employee_key) in the steward's queue: the best few per account, ranked
-- The scored pairs of a run (include/sql/staging/identity_suggestion_candidate.sql, bound as the temporary
-- identity_suggestion_candidate), less the pairs a steward rejected (they stay rejected), kept at or above
-- the score min_score and to the top_n best per account. The stage upserts them into
-- audit.identity_suggestion and removes the open rows no longer suggested; decided rows are never touched.
-- The evidence (per comparison: level, weight, the values compared) is assembled here, for the few kept.
with unsuppressed as (
    select *
    from identity_suggestion_candidate as candidate
    where not exists (
        select from audit.identity_suggestion as decided
        where
            decided.lms_user_id = candidate.lms_user_id
            and decided.employee_key = candidate.employee_key
            and decided.status <> 'open'
    )
),

scored as (
    -- An account is at most one person's: the score is the probability that this candidate, rather than
    -- another or nobody (odds 1), owns it, so a namesake next to a better-fitting candidate scores low.
    select
        *,
        round((
            power(2::float8, match_weight::float8)
            / (1 + sum(power(2::float8, match_weight::float8)) over (partition by lms_user_id))
        )::numeric, 6) as score
    from unsuppressed
),

ranked as (
    select
        *,
        row_number() over (
            partition by lms_user_id order by match_weight desc, employee_key asc
        )::integer as rank
    from scored
    where score >= %(min_score)s::numeric
),

final as (
    select
        lms_user_id,
        employee_key,
        hris_employee_id,
        unmatched_reason,
        score,
        match_weight,
        rank,
        'open' as status,
        %(run_id)s::text as created_run_id,
        jsonb_build_object(
            'prior', jsonb_build_object('weight', round(prior_weight::numeric, 3)),
            'name', jsonb_build_object(
                'level', name_level, 'weight', round(name_weight::numeric, 3),
                'similarity', round(name_similarity::numeric, 3), 'name_holders', name_holders
            ),
            'email_local_part', jsonb_build_object(
                'level', email_level, 'weight', round(email_weight::numeric, 3), 'edits', local_part_edits
            ),
            'domain_class', jsonb_build_object('level', domain_class, 'weight', round(domain_weight::numeric, 3)),
            'employment', jsonb_build_object(
                'level', employment_level,
                'weight', round(employment_weight::numeric, 3),
                'account_created_date', created_date,
                'employment_start_date', employment_start_date,
                'employment_end_date', employment_end_date
            )
        ) as evidence
    from ranked
    where rank <= %(top_n)s::integer
)

select * from final
