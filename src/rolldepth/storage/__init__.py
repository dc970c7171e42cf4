"""Arrays that may live on disk (memory-mapped ``.npy``) and the stores that record a run's progress."""
