-- one row per employee_key ever issued: its pseudonym under the current key (none without a key)
create or replace view governance.person_pseudonym as
select
    registry.employee_key,
    encode(
        sha256(
            pseudonym_key.outer_pad
            || sha256(pseudonym_key.inner_pad || convert_to(registry.employee_key::text, 'UTF8'))
        ),
        'hex'
    ) as person_pseudonym
from core.employee_key_registry as registry
cross join governance.pseudonym_key;
