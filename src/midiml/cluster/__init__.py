"""Clustering grid search over features (methods x reducers x k)."""
