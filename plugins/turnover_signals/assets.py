"""Airflow Assets this bundle produces, so downstream DAGs run when data arrives.

URIs are logical names in the bundle's own scheme: the warehouse's host is only known from
the `warehouse_postgres` connection at run time, never at parse time.

`LMS_STATEMENTS_STORED` is the LRS itself, watched from the triggerer (`turnover_signals.lms.watch`): its
events schedule `lms_api_ingest` within minutes of new statements. Building the watcher's trigger here
reads nothing: it holds no connection ids or settings of its own and looks them up when it polls.
"""

from airflow.sdk import Asset, AssetWatcher

from turnover_signals.lms.watch import LmsStatementsStoredTrigger

HRIS_EMPLOYEE_HISTORY = Asset(
    name="turnover_signals_hris_employee_history",
    uri="turnover-signals://warehouse/core/employee_history",
    group="turnover_signals",
)
LMS_ACTIVITY = Asset(
    name="turnover_signals_lms_activity",
    uri="turnover-signals://warehouse/core/lms_activity",
    group="turnover_signals",
)
EMPLOYEE_IDENTITY = Asset(
    name="turnover_signals_employee_identity",
    uri="turnover-signals://warehouse/core/employee_identity",
    group="turnover_signals",
)
EMPLOYEE_FEATURES = Asset(
    name="turnover_signals_employee_features",
    uri="turnover-signals://warehouse/mart/employee_features",
    group="turnover_signals",
)
TURNOVER_RISK_SCORE = Asset(
    name="turnover_signals_turnover_risk_score",
    uri="turnover-signals://warehouse/mart/turnover_risk_score",
    group="turnover_signals",
)
LMS_STATEMENTS_STORED = Asset(
    name="turnover_signals_lms_statements_stored",
    uri="turnover-signals://lms/xapi/statements",
    group="turnover_signals",
    watchers=[AssetWatcher(name="lms_statements_watcher", trigger=LmsStatementsStoredTrigger())],
)
