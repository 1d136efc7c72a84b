-- one row per sealed HRIS file: its snapshot date stays in the history's snapshot sequence
-- Retention seals a feed's loaded files in file-date order (retention/seal.py picks them), one row per file.
insert into core.hris_sealed_file (feed, sha256, file_name, file_date, received_at, rows_sealed, sealed_at)
values (%(feed)s, %(sha256)s, %(file_name)s, %(file_date)s, %(received_at)s, %(rows_sealed)s, %(sealed_at)s)
