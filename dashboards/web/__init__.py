"""The web dashboard: a local Starlette app over the audit database.

``auditor dashboard --db PATH`` serves it with uvicorn; :func:`create_app` builds it
for any ASGI server (and for tests).
"""

from dashboards.web.app import DashboardConfig, create_app
from dashboards.web.security import generate_token

__all__ = ["DashboardConfig", "create_app", "generate_token"]
