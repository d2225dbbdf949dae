"""`makestream serve` (being built)."""
