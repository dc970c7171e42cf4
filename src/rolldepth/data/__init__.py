"""Data: synthetic videos (renderer, scenes, camera paths, dataset files) and benchmark dataset loaders."""
