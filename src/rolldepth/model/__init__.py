"""The model: multi-frame attention, checkpoints, batch planning, loading and the RollingDepth pipeline."""
