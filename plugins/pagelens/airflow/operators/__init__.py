"""Airflow operators: the pagelens steps that run outside the worker process (the GPU encoder pod)."""
