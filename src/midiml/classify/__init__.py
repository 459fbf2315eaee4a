"""Classifiers: feature pipelines, the piano-roll CNN, training runs and serving."""
