-- one row per pseudonymization key installed
-- By fingerprint only, never the key: enough to tell when every analytics pseudonym changed.
insert into audit.pseudonym_key_rotation (
    key_fingerprint,
    previous_key_fingerprint,
    installed_at,
    dag_id,
    run_id
) values (
    %(key_fingerprint)s,
    %(previous_key_fingerprint)s,
    %(installed_at)s,
    %(dag_id)s,
    %(run_id)s
)
