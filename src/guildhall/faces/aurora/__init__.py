"""The Aurora bot API, with its live WebSocket."""
