-- A registered model is what it was trained on: its training facts (rows, windows, features, metrics, artifact
-- and its sha256, lineage, who trained it) never change after registration. Versions are content addressed
-- (turnover_signals.model.pipeline.training_key): different inputs register a new version instead. Only the
-- promotion columns move.
create or replace function audit.refuse_model_training_fact_change() returns trigger
language plpgsql
as $$
declare
    promotion_columns constant text[] := array['status', 'promoted_at', 'retired_at'];
begin
    if (to_jsonb(new) - promotion_columns) is distinct from (to_jsonb(old) - promotion_columns) then
        raise exception 'audit.model_registry %: the training facts of a registered model never change (only %)',
            old.model_version, array_to_string(promotion_columns, ', ')
            using errcode = 'check_violation',
                hint = 'train again: other inputs register a new model version (README: runbook-turnover_model)';
    end if;
    return new;
end
$$;

drop trigger if exists model_registry_training_facts_immutable on audit.model_registry;
create trigger model_registry_training_facts_immutable
before update on audit.model_registry
for each row execute function audit.refuse_model_training_fact_change();
