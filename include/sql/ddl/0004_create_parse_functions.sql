-- Text-to-type parsers shared by the validation gate and the core builds, so that what the
-- gate accepts is exactly what the build can parse. They return null instead of raising.

create or replace function core.parse_date_text(
    value text, pattern text, year_group integer, month_group integer, day_group integer
) returns date
language sql immutable parallel safe
as $$
    select case
        when parts is null then null
        when parts[year_group]::integer not between 1 and 9999 then null
        when parts[month_group]::integer not between 1 and 12 then null
        when parts[day_group]::integer between 1 and extract(
            day from make_date(parts[year_group]::integer, parts[month_group]::integer, 1)
            + interval '1 month - 1 day'
        ) then make_date(parts[year_group]::integer, parts[month_group]::integer, parts[day_group]::integer)
    end
    from (select regexp_match(btrim(value), pattern) as parts) as matched
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
