"""Shared settings of the demo DAGs (a small data platform, recorded for Accord's demo)."""

from __future__ import annotations

import os

import pendulum
from airflow.sdk import Asset

# The recording run sets the first scheduled interval a few hours back, so catch-up gives
# every scheduled DAG some history.
START = pendulum.parse(os.environ.get("ACCORD_DEMO_START", "2024-01-01T00:00:00+00:00"))

ORDERS = Asset(name="raw_orders", uri="s3://warehouse/raw/orders")
PAYMENTS = Asset(name="raw_payments", uri="s3://warehouse/raw/payments")
REVENUE = Asset(name="revenue_daily", uri="postgres://dwh:5432/analytics/marts/revenue_daily")
FEATURES = Asset(name="customer_features", uri="s3://ml-feature-store/customer_features_v3")
