"""telecentre: web."""
