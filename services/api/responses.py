"""Pre-built JSON response bodies for the hot routes.

A route that returns a ``Response`` skips FastAPI's response-model pass (validate the returned
dict into the model, then serialise it), which costs more than the lookup itself. The route
keeps its ``response_model`` so the OpenAPI document still describes the body; the answer
builders (``ApiService.risk_answer``) produce exactly that shape (camelCase, no ``null``
fields), and schemathesis checks every response against the document.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response


class JSONBody(Response):
    """``application/json`` encoded by orjson, from a dict already in the documented shape."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)
