"""How a guard describes its authentication in the AsyncAPI document: `SecurityScheme`.

A guard class sets `security` to a scheme, and every operation of a handler that uses the
guard references it:

```python
class User(Guard):
    security = SecurityScheme.api_key("token", "query", description="Session token")

    @classmethod
    def from_request(cls, request: HandshakeRequest) -> "User": ...
```

FastAPI's own security dependencies (`APIKeyHeader`, `HTTPBearer`, `OAuth2PasswordBearer`,
…) need nothing: they are converted from their OpenAPI model by `from_fastapi`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, Literal
from urllib.parse import urljoin

ApiKeyLocation = Literal["query", "header", "cookie"]


@dataclasses.dataclass(frozen=True)
class SecurityScheme:
    """An AsyncAPI 3.0 Security Scheme Object (`spec`) and its key in ``components``.

    `name` is the key under ``components.securitySchemes``; ``None`` uses the name of the
    guard class that carries the scheme. Build one with the constructors below, or pass any
    AsyncAPI security scheme as `spec`.
    """

    spec: Mapping[str, Any]
    name: str | None = None

    @classmethod
    def api_key(
        cls,
        key: str,
        location: ApiKeyLocation,
        *,
        description: str | None = None,
        name: str | None = None,
    ) -> SecurityScheme:
        """An API key sent in the query string, a header or a cookie, under the name `key`."""
        if location not in ("query", "header", "cookie"):
            raise ValueError(f"api_key location {location!r}: use 'query', 'header' or 'cookie'")
        spec: dict[str, Any] = {"type": "httpApiKey", "name": key, "in": location}
        return cls(_described(spec, description), name)

    @classmethod
    def http_bearer(
        cls, *, bearer_format: str | None = None, description: str | None = None, name: str | None = None
    ) -> SecurityScheme:
        """``Authorization: Bearer <token>`` (`bearer_format` is a hint such as ``"JWT"``)."""
        spec: dict[str, Any] = {"type": "http", "scheme": "bearer"}
        if bearer_format:
            spec["bearerFormat"] = bearer_format
        return cls(_described(spec, description), name)

    @classmethod
    def http(cls, scheme: str, *, description: str | None = None, name: str | None = None) -> SecurityScheme:
        """Another HTTP ``Authorization`` scheme, such as ``"basic"`` or ``"digest"``."""
        if scheme.lower() == "bearer":
            return cls.http_bearer(description=description, name=name)
        return cls(_described({"type": "http", "scheme": scheme}, description), name)

    def named(self, fallback: str) -> tuple[str, dict[str, Any]]:
        """The components key (`name`, else `fallback`) and a copy of the spec."""
        return self.name or fallback, dict(self.spec)


def _described(spec: dict[str, Any], description: str | None) -> dict[str, Any]:
    if description:
        spec["description"] = description
    return spec


def from_fastapi(model: Any, *, base_url: str | None = None) -> dict[str, Any] | None:
    """Convert the OpenAPI model of a FastAPI security dependency to an AsyncAPI scheme.

    OpenAPI's ``apiKey`` is AsyncAPI's ``httpApiKey`` (AsyncAPI's ``apiKey`` means a key
    in the user/password fields). Relative OAuth2 URLs (``tokenUrl="/token"``) are made
    absolute against `base_url` when given, since AsyncAPI requires absolute URLs there.
    Returns None for a model it does not know.
    """
    dumped: dict[str, Any] = model.model_dump(mode="json", by_alias=True, exclude_none=True)
    kind = dumped.get("type")
    description = dumped.get("description")
    spec: dict[str, Any]
    if kind == "apiKey":
        spec = {"type": "httpApiKey", "name": dumped["name"], "in": dumped["in"]}
    elif kind == "http":
        spec = {"type": "http", "scheme": str(dumped.get("scheme", "")).lower()}
        if spec["scheme"] == "bearer" and dumped.get("bearerFormat"):
            spec["bearerFormat"] = dumped["bearerFormat"]
    elif kind == "oauth2":
        flows: dict[str, Any] = {}
        for flow_name, flow in dumped.get("flows", {}).items():
            out: dict[str, Any] = {"availableScopes": dict(flow.get("scopes", {}))}
            for url_key in ("authorizationUrl", "tokenUrl", "refreshUrl"):
                if url_key in flow:
                    out[url_key] = urljoin(base_url, flow[url_key]) if base_url else flow[url_key]
            flows[flow_name] = out
        spec = {"type": "oauth2", "flows": flows}
    elif kind == "openIdConnect":
        url = dumped["openIdConnectUrl"]
        spec = {"type": "openIdConnect", "openIdConnectUrl": urljoin(base_url, url) if base_url else url}
    else:
        return None
    return _described(spec, description)
