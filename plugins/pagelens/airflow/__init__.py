"""Airflow integration of pagelens: hooks and operators that wire the core package into DAGs."""
