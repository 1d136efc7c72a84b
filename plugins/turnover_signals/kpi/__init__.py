"""Integration KPIs: `mart.integration_kpi`, one row per day and KPI, from what the pipeline already records.

`definitions` says what each KPI measures, where it is read from, its target and what on-call does when it is
red (docs/reference/kpis.md is generated from it); `build` writes a day's rows and alerts on red ones;
`charts` draws their time series for the KPI page (`turnover_signals.quality.report_app`).
"""
