"""Serving results: the page, the REST API, /metrics and the WebSocket (FastAPI under uvicorn, see ``app``)."""
