"""Assemble the human-readable report from what the stages wrote."""
