"""One ``rolldepth run`` of one video: presets, options, checks, work folder, outputs."""
