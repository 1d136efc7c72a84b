"""The demo's and the tests' tooling: the synthetic enterprise (`synth`), the sample SFTP and LMS servers
(`sample_servers`), `make demo` (`demo`) and the compose demo profile's sources (`demo_sources`).

Never deployed to Airflow: it lives beside `plugins/`, not in it, and no module of `turnover_signals` or
`dags/` imports it (`tests/unit/test_architecture.py`). It imports the bundle, never the other way round.
"""
