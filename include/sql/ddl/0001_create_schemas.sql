-- The four layers: raw (as received), core (conformed), mart (for models and BI), audit.
create schema if not exists raw;
create schema if not exists core;
create schema if not exists mart;
create schema if not exists audit;

comment on schema raw is 'Source data exactly as received: immutable, rebuildable from the manifests';
comment on schema core is 'Conformed, point-in-time history of employees, identities and learning activity';
comment on schema mart is 'Features, labels, training sets and risk scores for models and analysts';
comment on schema audit is 'File manifests, validation results, identity stewardship, model registry';
