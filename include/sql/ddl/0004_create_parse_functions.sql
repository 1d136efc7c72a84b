-- Text-to-type parsers shared by the validation gate and the core builds, so that what the
-- gate accepts is exactly what the build can parse. They return null instead of raising.
-- Callers with many rows parse each distinct text once and join (dates repeat a lot).

create or replace function core.parse_date_text(
    value text, pattern text, year_group integer, month_group integer, day_group integer
) returns date
language plpgsql immutable parallel safe
as $$
declare
    parts text[];
    year_part integer;
    month_part integer;
    day_part integer;
begin
    parts := regexp_match(btrim(value), pattern);
    if parts is null then
        return null;
    end if;
    year_part := parts[year_group]::integer;
    month_part := parts[month_group]::integer;
    day_part := parts[day_group]::integer;
    if year_part not between 1 and 9999 or month_part not between 1 and 12 or day_part < 1 then
        return null;
    end if;
    if day_part > extract(day from make_date(year_part, month_part, 1) + interval '1 month - 1 day') then
        return null;
    end if;
    return make_date(year_part, month_part, day_part);
end
$$;

create or replace function core.parse_numeric_text(value text) returns numeric
language sql immutable parallel safe
as $$
    select case when btrim(value) ~ '^-?[0-9]+(\.[0-9]+)?$' then btrim(value)::numeric end
$$;

create or replace function core.parse_integer_text(value text) returns integer
language sql immutable parallel safe
as $$
    select case when btrim(value) ~ '^-?[0-9]{1,9}$' then btrim(value)::integer end
$$;
