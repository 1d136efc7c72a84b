-- Statements beyond lms.max_statement_bytes or lms.max_statement_depth are rejected whole, and only their
-- first lms.rejected_excerpt_bytes are kept in `raw` (a 10 MB or 10,000-level statement stored whole would
-- make the bound pointless, and the LRS still holds it by id): payload_sha256 is then the digest of the
-- whole statement as received, payload_bytes its size, and is_raw_truncated says raw is an excerpt.
alter table raw.lms_statement_rejected add column if not exists payload_bytes bigint;
alter table raw.lms_statement_rejected add column if not exists is_raw_truncated boolean not null default false;

-- Why a published batch still needs a look: the LRS's clock ahead of ours (stored times or the
-- X-Experience-API-Consistent-Through header beyond now + lms.future_timestamp_tolerance_minutes).
alter table audit.lms_extract_batch add column if not exists clock_warning text;
