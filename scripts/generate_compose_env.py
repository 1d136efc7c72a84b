"""Print a `.env` for docker-compose.yaml with freshly generated secrets: `python
scripts/generate_compose_env.py > .env`.

Nothing here is a secret; what it prints is, so `.env` is git-ignored. Rotating ANALYTICS_PSEUDONYM_KEY
changes every pseudonym in the `analytics` schema on the next `warehouse_retention` run.
"""

import base64
import os
import secrets


def main() -> None:
    values = {
        "AIRFLOW_UID": str(os.getuid()) if hasattr(os, "getuid") else "50000",
        "AIRFLOW_FERNET_KEY": base64.urlsafe_b64encode(os.urandom(32)).decode(),
        "AIRFLOW_JWT_SECRET": secrets.token_urlsafe(32),
        "AIRFLOW_METADATA_DB_PASSWORD": secrets.token_urlsafe(18),
        "AIRFLOW_API_BOT_PASSWORD": secrets.token_urlsafe(18),
        "WAREHOUSE_SUPERUSER_PASSWORD": secrets.token_urlsafe(18),
        "WAREHOUSE_PIPELINE_PASSWORD": secrets.token_urlsafe(18),
        "WAREHOUSE_LOADER_PASSWORD": secrets.token_urlsafe(18),
        "WAREHOUSE_TRANSFORMER_PASSWORD": secrets.token_urlsafe(18),
        "WAREHOUSE_QUALITY_READER_PASSWORD": secrets.token_urlsafe(18),
        "WAREHOUSE_ANALYST_PASSWORD": secrets.token_urlsafe(18),
        "ANALYTICS_PSEUDONYM_KEY": secrets.token_urlsafe(32),
    }
    for name, value in values.items():
        print(f"{name}={value}")


if __name__ == "__main__":
    main()
