"""Airflow plugin: the "Data quality" page for auditors, a link from each task instance to its results, and
the "KPIs" page beside it (integration KPIs and model monitoring).

Only registration lives here; the app is `turnover_signals.quality.report_app`, which enforces
Airflow's authentication and authorization itself (plugin apps are mounted without them).
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from turnover_signals.quality.report_app import create_app

URL_PREFIX = "/data-quality"


class DataQualityPlugin(AirflowPlugin):
    name = "turnover_signals_data_quality"
    fastapi_apps = [{"app": create_app(), "url_prefix": URL_PREFIX, "name": "Data quality"}]
    external_views = [
        # integration KPIs and model monitoring, beside the validation runs (same app, same authorization)
        {
            "name": "KPIs",
            "href": "data-quality/kpis",
            "destination": "nav",
            "category": "browse",
            "url_route": "data-quality-kpis",
        },
        {
            "name": "Data quality",
            "href": "data-quality/",
            "destination": "nav",
            "category": "browse",
            "url_route": "data-quality",
        },
        {
            "name": "Data quality results",
            "href": "data-quality/?dag_id={DAG_ID}&run_id={RUN_ID}&task_id={TASK_ID}&map_index={MAP_INDEX}",
            "destination": "task_instance",
            "url_route": "data-quality-task-instance",
        },
    ]
