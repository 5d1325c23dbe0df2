"""telecentre: orchestrator."""
