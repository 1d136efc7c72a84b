-- one row per employee_key per reference_date per feature_set_version, every fact as known at known_now_at
-- An "as known now" restatement, built only on request, for analysis: the rows of
-- include/sql/mart/employee_features.sql built with as_known_now (each date's facts as known at the
-- restatement's time instead of at its cut-off), staged and gated like the as-of rows. The builder binds the
-- staged rows to the name staged_feature_rows and first deletes the dates it restates.
-- The staged columns are those of mart.employee_features but the two set here, whichever migration added
-- them: named one by one, a new feature column would go silently null in restatements.
with staged as (
    select * from staged_feature_rows
),

final as (
    select
        staged.*,
        cast(%(build_id)s as text) as build_id,
        now() as built_at
    from staged
)

-- the columns are the staged ones (see above), so their number is not known here
-- noqa: disable=AM04
select * from final
