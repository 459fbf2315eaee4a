"""Datasets: where MIDI comes from, how it is fetched and verified, and how it is parsed."""
