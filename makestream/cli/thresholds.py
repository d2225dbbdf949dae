"""`makestream thresholds` (being built)."""
