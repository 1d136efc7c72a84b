-- one row per HRIS feed with a sealed file: the date retention sealed the feed through
-- Retention seals a feed in file-date order (turnover_signals.retention.seal), so the sealed files are a
-- prefix of the feed and this date is its end: a loaded file dated on or before it arrived after its period
-- was sealed (its raw data may be gone), so the history builds leave it out and retention starts after it.
-- A feed nothing was sealed of has no row. Read by core/employee_history.sql, core/compensation_event_version.sql,
-- turnover_signals.hris.history and turnover_signals.retention (seal and purge).
create or replace view core.hris_sealed_through as
with sealed_files as (
    select
        feed,
        file_date
    from core.hris_sealed_file
),

final as (
    select
        feed,
        max(file_date) as sealed_through_date
    from sealed_files
    group by feed
)

select * from final;
