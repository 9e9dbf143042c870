"""Is an answer one the face's OpenAPI document describes? For answers the fuzzer cannot
reach (a paired session, a finished OAuth login), checked the way Schemathesis checks."""

from __future__ import annotations

import re
from typing import Any

import httpx
from jsonschema import Draft202012Validator

from guildhall.faces.common import openapi


class Documented:
    """One face's document, resolved on demand."""

    def __init__(self, face: str) -> None:
        self.document = openapi.document(face)

    def resolved(self, node: Any) -> Any:
        """The node with every local ``$ref`` replaced by its target (no document cycles)."""
        if isinstance(node, list):
            return [self.resolved(item) for item in node]
        if not isinstance(node, dict):
            return node
        if "$ref" in node:
            target: Any = self.document
            for part in node["$ref"].removeprefix("#/").split("/"):
                target = target[part]
            siblings = {key: value for key, value in node.items() if key != "$ref"}
            return self.resolved({**target, **siblings})
        return {key: self.resolved(value) for key, value in node.items()}

    def template(self, path: str) -> str:
        """The documented path a request path is routed to: a parameter is one segment,
        unless no template matches so (a Starlette ``{name:path}`` may hold ``/``)."""
        for segment in ("[^/]+", ".+"):
            for template in self.document["paths"]:
                if re.fullmatch(re.sub(r"\{\w+\}", segment, template), path):
                    return template
        raise AssertionError(f"no documented path for {path}")

    def conforms(self, response: httpx.Response) -> httpx.Response:
        """Assert the answer is one the document describes for its operation; return it."""
        request = response.request
        path = request.url.raw_path.decode().split("?")[0]  # as sent: %2F is no separator
        where = f"{request.method} {path}"
        operation = self.document["paths"][self.template(path)][request.method.lower()]
        described = operation["responses"].get(str(response.status_code))
        assert described is not None, f"{where}: {response.status_code} is not documented"
        described = self.resolved(described)
        for name, header in described.get("headers", {}).items():
            if not header.get("required"):
                continue
            assert name.lower() in response.headers, f"{where}: no {name} header"
            if header["schema"].get("type") == "string":
                value = response.headers[name]
                errors = list(Draft202012Validator(header["schema"]).iter_errors(value))
                assert not errors, f"{where} {name}: {errors[0].message}"
        if "content" not in described:
            assert not response.content, f"{where}: a body where none is documented"
            return response
        media_type = response.headers["content-type"].split(";")[0].strip()
        assert media_type in described["content"], f"{where}: {media_type} is not documented"
        schema = described["content"][media_type]["schema"]
        body = response.json() if media_type == "application/json" else response.text
        errors = list(Draft202012Validator(schema).iter_errors(body))
        assert not errors, f"{where} {response.status_code}: {errors[0].message}\n{body}"
        return response
