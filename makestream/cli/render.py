"""`makestream render` (being built)."""
