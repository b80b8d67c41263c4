"""Tools that already emit OpenLineage (Airflow's provider, dbt, Spark), seen through
the RunEvents they send to Accord."""
