"""Video in and out: reading and resizing frames, shot cuts, depth writers, point clouds and 3-D export."""
