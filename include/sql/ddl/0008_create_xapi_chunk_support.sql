-- original-sha256: 9c841c9220fc742f12bfcca35fb76c3f2bb89ad6b357131110afed1f8685f70c
-- body-sha256: 6fc23867eb347dd850f6ffca1734f76aa9279f79fa614699b0c128978c341e1f
-- Revised after release: core.parse_xapi_timestamp_text (functions/) moved to include/sql/repeatable/ (one
-- current definition, applied after the numbered migrations); a warehouse that applied the original keeps it.

-- xAPI extraction by chunks: statement times parsed in SQL (the loader no longer touches each
-- statement in Python) and voids found without scanning the whole raw history.

-- Voiding statements by their target: a batch finds the earlier voids of its own statements
-- through this small partial index instead of reading every stored statement's JSON.
create index if not exists lms_statement_void_target_idx
on raw.lms_statement ((statement #>> '{object,id}'))
where statement #>> '{verb,id}' = 'http://adlnet.gov/expapi/verbs/voided';
