"""turnover-signals: join HRIS and LMS data to predict and act on employee turnover.

All logic of the Airflow bundle lives in this package; the DAG files only wire tasks.
"""

__version__ = "0.1.0"
