"""Airflow hooks: one external system behind one Airflow connection each."""
