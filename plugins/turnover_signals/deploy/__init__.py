"""What the docker-compose stack runs besides Airflow itself."""
