"""telecentre: room_agents."""
