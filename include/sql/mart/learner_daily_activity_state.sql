-- one row: the knowledge rules mart.learner_daily_activity was built with and how far it has read the LMS
-- tables (by load time)
-- The watermark never moves back: a refresh that found nothing newer keeps the one before.
insert into mart.learner_daily_activity_state (
    singleton,
    as_of_grace,
    import_cutover,
    import_knowledge_lag,
    loaded_watermark
) values (
    true,
    %(as_of_grace)s,
    %(import_cutover)s,
    %(import_knowledge_lag)s,
    %(loaded)s
)
on conflict (singleton) do update set
    as_of_grace = excluded.as_of_grace,
    import_cutover = excluded.import_cutover,
    import_knowledge_lag = excluded.import_knowledge_lag,
    loaded_watermark = greatest(
        excluded.loaded_watermark,
        mart.learner_daily_activity_state.loaded_watermark
    )
