-- one row per probe of an LRS: what it does (lms.conformance.LrsProfile) and the evidence, per source
-- The latest row of a source is the profile in force; older rows stay as the history of what was seen.
insert into audit.lrs_conformance (
    source, endpoint, since_field, page_cap, sends_version_header, sends_consistent_through,
    voided_hidden, voided_query_supported, more_form, strategy, evidence
) values (
    %(source)s, %(endpoint)s, %(since_field)s, %(page_cap)s, %(sends_version_header)s,
    %(sends_consistent_through)s, %(voided_hidden)s, %(voided_query_supported)s, %(more_form)s,
    %(strategy)s, %(evidence)s
)
