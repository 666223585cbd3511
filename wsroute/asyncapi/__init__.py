"""AsyncAPI 3.0 documentation of the WebSocket routes: the document, its page, guard security.

``router.install(app)`` serves the document at ``/asyncapi.json`` and a page rendering it
at ``/asyncapi``; `asyncapi_document` builds it without an app (``python -m wsroute
asyncapi module:app`` prints it); `asyncapi_warnings` lists what it leaves out
(``--check``).
"""

from wsroute.asyncapi.document import asyncapi_document, asyncapi_warnings
from wsroute.asyncapi.page import BUNDLE_VERSION, UNPKG, asyncapi_for_app
from wsroute.security import SecurityScheme

__all__ = [
    "BUNDLE_VERSION",
    "UNPKG",
    "SecurityScheme",
    "asyncapi_document",
    "asyncapi_for_app",
    "asyncapi_warnings",
]
