"""Every reply the proxy sends, checked against OpenAI's OpenAPI schema.

The spec is read from where the project keeps its shared data (never copied into the
repository): ``THINKSTOP_OPENAI_SPEC`` or ``<repo>/../shared/data/openai-openapi/openapi.yaml``;
without it the checks are skipped, saying why. The schemas use OpenAPI's ``nullable:
true`` in places (not JSON Schema): those become ``anyOf [schema, null]`` before
validating with ``jsonschema`` (draft 2020-12, as OpenAPI 3.1 is).

:class:`SpecTap` wraps the proxy's ASGI app and records every reply (status, content
type, body); :func:`violations` checks each by endpoint: chat chunks and bodies, text
completions, Responses events and objects, models, and every error body. The one
deviation allowed is documented at :func:`_completion_chunk`.
"""

from __future__ import annotations

import copy
import functools
import json
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

# Beside the repository, as the benchmark tests find their data (tests/benchmarks/conftest.py).
_SHARED_SPEC = (Path(__file__).resolve().parents[2].parent / "shared" / "data"
                / "openai-openapi" / "openapi.yaml")
SPEC_PATH = Path(os.environ.get("THINKSTOP_OPENAI_SPEC", str(_SHARED_SPEC)))
BASE = "urn:openai-openapi"


def _nullable(node: Any) -> Any:
    """OpenAPI 3.0's ``nullable: true`` as JSON Schema (``anyOf`` with ``null``)."""
    if isinstance(node, list):
        return [_nullable(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: _nullable(value) for key, value in node.items()}
    if out.pop("nullable", False) is True:
        return {"anyOf": [out, {"type": "null"}]}
    return out


class Spec:
    """Validators for the spec's component schemas."""

    def __init__(self, document: dict[str, Any]) -> None:
        document = _nullable(copy.deepcopy(document))
        document["$id"] = BASE
        resource = Resource.from_contents(document, default_specification=DRAFT202012)
        self.registry: Registry[Any] = Registry().with_resource(BASE, resource)
        self.schemas: dict[str, Any] = document["components"]["schemas"]
        self._lock = threading.Lock()
        self._validators: dict[str, Draft202012Validator] = {}
        self.event_schemas = self._event_schemas()

    def validator(self, name: str) -> Draft202012Validator:
        with self._lock:
            if name not in self._validators:
                schema = {"$ref": f"{BASE}#/components/schemas/{name}"}
                self._validators[name] = Draft202012Validator(schema, registry=self.registry)
            return self._validators[name]

    def errors(self, name: str, instance: Any) -> list[str]:
        found = sorted(self.validator(name).iter_errors(instance), key=lambda e: e.path)
        return [f"{name} at {'/'.join(map(str, e.absolute_path)) or '(root)'}: "
                f"{e.message[:300]}" for e in found]

    def _event_schemas(self) -> dict[str, str]:
        """Responses stream event ``type`` -> the schema of that event."""
        out = {}
        for ref in self.schemas["ResponseStreamEvent"]["anyOf"]:
            name = ref["$ref"].rsplit("/", 1)[-1]
            kind = self.schemas[name].get("properties", {}).get("type", {}).get("enum", [None])
            if kind[0]:
                out[kind[0]] = name
        return out


@functools.cache
def load_spec() -> Spec | None:
    if not SPEC_PATH.exists():
        return None
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    with SPEC_PATH.open() as handle:
        return Spec(yaml.load(handle, Loader=loader))


def require_spec() -> Spec:
    spec = load_spec()
    if spec is None:
        pytest.skip(f"the OpenAI OpenAPI spec is not at {SPEC_PATH} "
                    "(set THINKSTOP_OPENAI_SPEC to check reply shapes against it)")
    return spec


# -- recording replies ---------------------------------------------------------------------
@dataclass
class Reply:
    method: str
    path: str
    status: int = 0
    content_type: str = ""
    body: bytearray = field(default_factory=bytearray)
    complete: bool = False


class SpecTap:
    """ASGI wrapper recording every HTTP reply the app sends."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self._lock = threading.Lock()
        self._replies: list[Reply] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        reply = Reply(scope["method"], scope["path"])
        with self._lock:
            self._replies.append(reply)

        async def tapped(message: Any) -> None:
            if message["type"] == "http.response.start":
                reply.status = message["status"]
                headers = dict(message.get("headers") or [])
                reply.content_type = headers.get(b"content-type", b"").decode()
            elif message["type"] == "http.response.body":
                reply.body.extend(message.get("body", b""))
                reply.complete = not message.get("more_body", False)
            await send(message)

        await self.app(scope, receive, tapped)

    def take(self) -> list[Reply]:
        with self._lock:
            replies, self._replies = self._replies, []
        return replies


# -- checking them -----------------------------------------------------------------------
def _events(reply: Reply) -> list[tuple[str | None, str]]:
    """(event name, data) of each whole SSE event (a cut-off last one is left out)."""
    text = reply.body.decode(errors="replace")
    blocks = text.split("\n\n")
    if not reply.complete or not text.endswith("\n\n"):
        blocks = blocks[:-1]
    out = []
    for block in blocks:
        name, data = None, []
        for line in block.split("\n"):
            if line.startswith("event:"):
                name = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].strip())
        if data:
            out.append((name, "\n".join(data)))
    return out


def _completion_chunk(spec: Spec, chunk: dict[str, Any]) -> list[str]:
    """A streamed text completion. The spec says its chunks share the body's shape, whose
    ``finish_reason`` is never null, but OpenAI (and every compatible server) streams
    ``null`` until the last chunk: checked as if it were the finish reason to come."""
    relaxed = copy.deepcopy(chunk)
    for choice in relaxed.get("choices") or ():
        if isinstance(choice, dict) and choice.get("finish_reason") is None:
            choice["finish_reason"] = "stop"
    return spec.errors("CreateCompletionResponse", relaxed)


def _check_json(spec: Spec, reply: Reply, data: Any) -> list[str]:
    path = reply.path.removeprefix("/v1")
    if reply.status >= 400:
        return spec.errors("ErrorResponse", data)
    if path == "/chat/completions":
        return spec.errors("CreateChatCompletionResponse", data)
    if path == "/completions":
        return spec.errors("CreateCompletionResponse", data)
    if path.startswith("/responses"):
        return spec.errors("Response", data)
    if path == "/models":
        return spec.errors("ListModelsResponse", data)
    if path.startswith("/models/"):
        return spec.errors("Model", data)
    return []


def _check_stream(spec: Spec, reply: Reply) -> list[str]:
    path = reply.path.removeprefix("/v1")
    problems: list[str] = []
    for name, data in _events(reply):
        if data == "[DONE]":
            continue
        payload = json.loads(data)
        if "error" in payload and name is None:
            problems += spec.errors("ErrorResponse", payload)
        elif path == "/chat/completions":
            problems += spec.errors("CreateChatCompletionStreamResponse", payload)
        elif path == "/completions":
            problems += _completion_chunk(spec, payload)
        elif path == "/responses":
            kind = payload.get("type")
            schema = spec.event_schemas.get(str(kind))
            if schema is None or name != kind:
                problems.append(f"Responses event {name!r} / {kind!r} is not in the spec")
            else:
                problems += spec.errors(schema, payload)
    return problems


# Replies that are not OpenAI shapes: health, metrics, docs, and the unread 499.
_NOT_OPENAI = ("/health", "/metrics", "/docs", "/openapi.json", "/redoc")


def violations(spec: Spec, replies: list[Reply]) -> list[str]:
    """Every way ``replies`` differ from the spec (empty: all conform)."""
    problems = []
    for reply in replies:
        if reply.status in (0, 499) or reply.path.startswith(_NOT_OPENAI):
            continue
        where = f"{reply.method} {reply.path} -> {reply.status}"
        if reply.content_type.startswith("text/event-stream"):
            found = _check_stream(spec, reply)
        elif reply.content_type.startswith("application/json") and reply.complete:
            found = _check_json(spec, reply, json.loads(bytes(reply.body)))
        else:
            found = [] if reply.status < 400 else [f"an error that is not JSON: "
                                                   f"{bytes(reply.body[:200])!r}"]
        problems.extend(f"{where}: {problem}" for problem in found)
    return problems
