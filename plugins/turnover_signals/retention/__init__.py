"""Retention: purge or archive raw data past its configured age, recording every purge in audit."""
