"""Applications: the command line, the web page, Ray, the benches (the top layer)."""
