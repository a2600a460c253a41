"""The operator surface: an HTTP API, a web dashboard and Prometheus metrics (DESIGN 6).

``runtime start --http HOST:PORT`` serves it from the service, ``runtime dashboard
--http HOST:PORT`` without a worker, and :func:`create_app` returns it as an ASGI app
to mount in your own FastAPI or Starlette app.
"""

from runtime.web.app import create_app

__all__ = ["create_app"]
