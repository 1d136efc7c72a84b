-- one row per validation run older than the cutoff that still keeps unexpected-value samples
-- Retention (temp table retention_validation_sample) cuts the samples (observed.sample of each expectation)
-- out of these rows and, in archive mode, archives the rows as they were first: the row, its verdict and its
-- counts stay, since audit rows are never deleted.
with validations as (
    select
        validation_id,
        suite_name,
        validated_at,
        failed_expectations,
        results
    from audit.validation_result
),

final as (
    select
        validation_id,
        suite_name,
        validated_at,
        failed_expectations,
        results
    from validations
    where
        validated_at < %(cutoff)s
        and (
            jsonb_path_exists(failed_expectations, '$[*].observed.sample')
            or jsonb_path_exists(results, '$[*].observed.sample')
        )
)

select * from final
