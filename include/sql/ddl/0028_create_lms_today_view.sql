-- original-sha256: 1fd4e03368a40be90278792b36c510f9a8bcc9d62fe3b6fd4bf60193e5509a8e
-- body-sha256: ed9b5123dd0fb78e0602e067bf1bef821a946c216c0feeb5f20cd81522c7e224
-- Revised after release: mart.lms_activity_today_provisional (views/) moved to include/sql/repeatable/ (one
-- current definition, applied after the numbered migrations); a warehouse that applied the original keeps it.

-- Near-real-time LMS (the LRS watcher): a clearly provisional view of today's activity, and an index for it.
-- Published features never read this view.

-- today's rows are found by their occurred_at alone (lms_activity_learner_idx leads with the learner)
create index if not exists lms_activity_occurred_idx on core.lms_activity (occurred_at);
