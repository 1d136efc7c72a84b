-- one row: the HMAC pads of the current pseudonymization key
-- The pads, not the key: the analytics views compute HMAC-SHA256 with sha256() alone, and the key itself
-- stays in the Airflow connection. Installing another key replaces the row (every pseudonym changes).
insert into governance.pseudonym_key (
    key_slot,
    inner_pad,
    outer_pad,
    key_fingerprint,
    installed_at
) values (
    'current',
    %(inner_pad)s,
    %(outer_pad)s,
    %(key_fingerprint)s,
    %(installed_at)s
)
on conflict (key_slot) do update set
    inner_pad = excluded.inner_pad,
    outer_pad = excluded.outer_pad,
    key_fingerprint = excluded.key_fingerprint,
    installed_at = excluded.installed_at
