"""Tests of the compose deployment: docker/, dagster.yaml, workspace.yaml, .env.example (no Docker engine)."""
