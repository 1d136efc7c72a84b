-- Daily label refresh without rebuilding every label: the employment outcome each employee's
-- labels were last computed from, and an index to replace the labels of a few reference dates.

-- one row per HRIS employee: the exit the labels were computed from (null exit: none known)
create table if not exists mart.turnover_label_outcome (
    hris_employee_id text primary key,
    exit_date date,
    exit_category text
);

create index if not exists turnover_label_date_idx on mart.turnover_label (reference_date);
