-- analytics.day_count_band(day_count): the band of a day count that the analytics views show
-- A day count as a band an analyst may see: exact days since a hire, promotion or manager change are dates
-- that colleagues know.
create or replace function analytics.day_count_band(day_count integer) returns text
language sql
immutable
parallel safe
as $$
    select case
        when day_count is null then null
        when day_count < 365 then '<1y'
        when day_count < 730 then '1-2y'
        when day_count < 1826 then '2-5y'
        when day_count < 3652 then '5-10y'
        else '10y+'
    end
$$;

comment on function analytics.day_count_band(integer) is
'The band of a day count shown by the analytics views: <1y, 1-2y, 2-5y, 5-10y, 10y+';
