"""`makestream flow` (being built)."""
