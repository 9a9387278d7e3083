"""The aiohttp gateway: HTTP endpoints and WebSocket sessions over the triage engine."""
