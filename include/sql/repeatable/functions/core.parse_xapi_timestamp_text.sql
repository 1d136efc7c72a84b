-- core.parse_xapi_timestamp_text(value, is_zone_required): an xAPI (ISO 8601) time as an aware timestamp,
-- or null when it is not one; without a zone it is read as UTC unless a zone is required. Mirrors
-- turnover_signals.sources.xapi.parse_xapi_timestamp: fractions beyond microseconds are truncated, 'T' or a
-- space separates date and time. Values are range-checked before the cast, which would raise instead of
-- returning null (year 0000 too: migration 0032 fixed the fast path that cast it and failed a whole chunk).
create or replace function core.parse_xapi_timestamp_text(value text, is_zone_required boolean)
returns timestamptz
language plpgsql immutable parallel safe
as $$
declare
    parts text[];
    month_part integer;
    day_part integer;
begin
    -- The common shape, with a day that exists in every year, a year from 0001 and at most microseconds, is
    -- safe to cast as is (about 10 times faster than taking it apart); February 29, year 0000 (no such year:
    -- the cast raised instead of returning null) and everything else go the long way.
    if value ~ ('^(?!0000)[0-9]{4}-(?:(?:0[1-9]|1[0-2])-(?:0[1-9]|1[0-9]|2[0-8])|(?:0[13-9]|1[0-2])-(?:29|30)'
        || '|(?:0[13578]|1[02])-31)T(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:[.][0-9]{1,6})?'
        || '(?:Z|[+-](?:0[0-9]|1[0-5]):[0-5][0-9])$') then
        return value::timestamptz;
    end if;
    parts := regexp_match(
        btrim(value),
        '^([0-9]{4})-([0-9]{2})-([0-9]{2})'
        || '(?:[T ]([0-9]{2})(?::([0-9]{2})(?::([0-9]{2})(?:[.,]([0-9]{1,6})[0-9]*)?)?)?)?'
        || '(?:([Zz])|([+-])([0-9]{2})(?::?([0-9]{2}))?)?$'
    );
    if parts is null or (is_zone_required and parts[8] is null and parts[9] is null) then
        return null;
    end if;
    if parts[4] is null and (parts[8] is not null or parts[9] is not null) then
        return null;  -- a zone needs a time
    end if;
    month_part := parts[2]::integer;
    day_part := parts[3]::integer;
    if parts[1]::integer < 1 or month_part not between 1 and 12 or day_part < 1
        or coalesce(parts[4], '00')::integer > 23 or coalesce(parts[5], '00')::integer > 59
        or coalesce(parts[6], '00')::integer > 59 or coalesce(parts[10], '00')::integer > 15
        or coalesce(parts[11], '00')::integer > 59 then
        return null;
    end if;
    if day_part > 28
        and day_part > extract(day from make_date(parts[1]::integer, month_part, 1) + interval '1 month - 1 day') then
        return null;
    end if;
    return (
        parts[1] || '-' || parts[2] || '-' || parts[3] || ' ' || coalesce(parts[4], '00') || ':'
        || coalesce(parts[5], '00') || ':' || coalesce(parts[6], '00') || '.' || coalesce(parts[7], '0')
        || coalesce(parts[9] || parts[10] || ':' || coalesce(parts[11], '00'), '+00:00')
    )::timestamptz;
end
$$;
