"""Synthetic cohorts written in the same on-disk formats as the real data."""
