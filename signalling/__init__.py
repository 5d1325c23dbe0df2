"""telecentre: signalling."""
