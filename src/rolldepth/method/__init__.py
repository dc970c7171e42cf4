"""The method in pure numpy: snippets, co-alignment, merging, metric scale from anchors."""
