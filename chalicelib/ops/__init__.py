"""Operating the registry: health checks (zot's /livez, /readyz, /startupz) and metrics (Prometheus locally, EMF on Lambda).

The logic both adapters share: the local server wraps the core's handler with it, app.py's routes
call it. It may import the API (the service it checks and measures) and everything below it; the
CLI, the adapters and app.py import it.
"""
