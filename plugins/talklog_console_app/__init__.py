"""The console's FastAPI app (`app.create_app`), imported on the api-server's first request."""

from .app import create_app

__all__ = ["create_app"]
