"""Generators: next-event models, their losses, training, sampling and continuation."""
