"""Training of the small model on synthetic videos."""
