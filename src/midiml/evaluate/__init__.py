"""Metrics computed from pipeline outputs (dataset statistics, music metrics)."""
