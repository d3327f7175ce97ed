"""The /ops/ dashboard: its page, figures and tiles, the ws/ops/ socket, cache warming."""
