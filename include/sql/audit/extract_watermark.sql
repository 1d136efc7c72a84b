-- one row per source: how far its extraction has loaded everything (the next one starts there)
-- Moved forward only, never back, inside the caller's publishing transaction: the xAPI statements (hourly
-- chunks and backfill slices, lms/statements.py, lms/backfill.py) and the SCIM users (lms/users.py). The
-- label build sets its own source's watermark with a statement of its own (features/labels.py).
insert into audit.extract_watermark (source, watermark, batch_id, updated_at)
values (%(source)s, %(watermark)s, %(batch_id)s, now())
on conflict (source) do update
    set
        watermark = greatest(audit.extract_watermark.watermark, excluded.watermark),
        batch_id = excluded.batch_id,
        updated_at = excluded.updated_at
