-- HRIS job levels are mapped by configuration (hris.job_level_mapping) instead of parsed as integers,
-- which turned a vendor value such as `L3` into a null. The history keeps the vendor's text
-- (job_level_raw) and the matching rule's label beside the ordinal (job_level). The sealed baseline
-- keeps the text, which the history build maps again like a live snapshot's.
alter table core.employee_history add column if not exists job_level_raw text;
alter table core.employee_history add column if not exists job_level_label text;
alter table core.employee_snapshot_baseline add column if not exists job_level_raw text;

-- Snapshots sealed before this migration have no text left (their raw partitions are gone): their
-- level was what core.parse_integer_text accepted, an integer, and that integer's text stands for it.
update core.employee_snapshot_baseline
set job_level_raw = job_level::text
where job_level is not null and job_level_raw is null;

-- The ordinal and label `mapping` gives a vendor job level; both null when nothing maps it, or the
-- ordinal it gives is not an integer. `mapping` is hris.job_level_mapping as compiled by
-- turnover_signals.hris.job_levels: {"values": {"<trimmed, lowercased value>": {"ordinal": 4,
-- "label": "senior"}}, "patterns": [{"pattern": "^(?:...)$", "ordinal": "\\1", "label": ...}]}. Exact
-- values first, then the patterns in order, case ignored. The HRIS gate and the history build both
-- call it, so a file that passed the gate maps in the history the same way.
create or replace function core.map_job_level(
    value text, mapping jsonb, out ordinal integer, out label text
)
language plpgsql immutable parallel safe
as $$
declare
    level_text text := btrim(value);
    exact_rule jsonb := mapping -> 'values' -> lower(btrim(value));
    pattern_rule jsonb;
begin
    if exact_rule is not null then
        ordinal := core.parse_integer_text(exact_rule ->> 'ordinal');
        label := exact_rule ->> 'label';
        return;
    end if;
    for pattern_rule in select rules.rule from jsonb_array_elements(mapping -> 'patterns') as rules (rule) loop
        if level_text ~* (pattern_rule ->> 'pattern') then
            ordinal := core.parse_integer_text(
                regexp_replace(level_text, pattern_rule ->> 'pattern', pattern_rule ->> 'ordinal', 'i')
            );
            label := regexp_replace(level_text, pattern_rule ->> 'pattern', pattern_rule ->> 'label', 'i');
            return;
        end if;
    end loop;
end
$$;
