-- A reject that a published chunk accepted (its chunk passed the gate with it among its rejects) is not gated
-- again when the LRS returns it in a later batch. A statement stored in the future stays after the watermark
-- and is re-read by every extraction until the vendor voids it, and the look-back windows re-read rejects for
-- days: counted again each time, one such statement would fail every small hourly batch. A reject of a chunk
-- that failed its gate is not accepted, so a rerun of that chunk is gated on it again.
alter table raw.lms_statement_rejected add column if not exists accepted_in_batch text;

comment on column raw.lms_statement_rejected.accepted_in_batch is
'the first batch that passed its gate with this reject among its rejects; null: never accepted';
