-- The model card of a training run (turnover_signals.model.card), written once beside its report: recorded
-- when the model is registered, since the immutability trigger of 0030 refuses any later change of a
-- registered model's facts. Null: registered before model cards existed.
alter table audit.model_registry add column if not exists card_path text;

-- Scores whose top contributing features were withheld, and why (the employee's department had fewer scored
-- employees than model.card_min_group_size at the reference date; top_features is then []). Null: shown.
alter table mart.turnover_risk_score add column if not exists top_features_withheld_reason text;
