"""Representations of note events: features, event windows, piano rolls, tokens."""
