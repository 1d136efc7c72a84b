-- one row per identifier with a steward decision: the latest active one, which every run applies
create or replace view audit.identity_override_current as
select distinct on (identifier_type, identifier_value)
    override_id,
    identifier_type,
    identifier_value,
    decision,
    employee_key,
    decided_by,
    decided_at,
    reason
from audit.identity_override
where is_active
order by identifier_type asc, identifier_value asc, decided_at desc, override_id desc;
