"""Serving results: the wire codec, the fan-out hub, the WebSocket/HTTP server."""
