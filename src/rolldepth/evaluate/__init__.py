"""Evaluation: depth metrics and the ``rolldepth eval`` runner."""
