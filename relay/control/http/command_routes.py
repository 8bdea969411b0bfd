"""Commands over HTTP and the OpenAPI document, both from the one command registry
(relay/control/commands.py): a command added there is at once an endpoint, a described
operation and a button (or form) on the dashboard.

``POST /api/commands/<name>`` takes the same JSON body as MQTT ``request/<name>`` and
answers the same reply (``status``, ``data``, ``error``, ``transaction``); the HTTP status
says the kind of answer: 200 done, 400 the request is malformed, 403 the role may not
send it, 409 the relay refused it (e.g. no healthy backup). Every request, refused or
not, is recorded as a ``command`` event with ``source`` ``http:<user>``.
"""

from __future__ import annotations

import functools
from typing import Any

from aiohttp import web

from relay import __version__
from relay.control.commands import COMMANDS, ROLES, Dispatcher, Request, RequestError, may_send, parse_request
from relay.control.http.live import encode

STATUS = {"ok": 200, "invalid": 400, "role": 403, "refused": 409}
REPLY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["status"],
    "properties": {
        "status": {"type": "string", "enum": ["ok", "error"]},
        "data": {"type": "object", "description": "what the command did or found"},
        "error": {"type": ["string", "null"], "description": "what is wrong, for a person"},
        "transaction": {"type": ["string", "integer", "null"], "description": "echoed from the request"},
    },
}


def json_response(body: Any, status: int = 200) -> web.Response:
    return web.Response(text=encode(body), status=status, content_type="application/json",
                        headers={"Cache-Control": "no-store"})


def command_list(role: str) -> list[dict[str, Any]]:
    """Every command as the dashboard draws it: what it does, who may send it, its fields."""
    return [{"name": spec.name, "summary": spec.summary, "role": spec.role, "on_air": spec.on_air,
             "allowed": may_send(role, spec),  # type: ignore[arg-type]
             "schema": _schema(spec.request)} for spec in COMMANDS.values()]


@functools.cache
def _schema(model: type[Request]) -> dict[str, Any]:
    """A request model's JSON schema: made once (pydantic takes milliseconds each time, and
    every page and /api/commands asks)."""
    return model.model_json_schema()


async def run_command(dispatcher: Dispatcher, name: str, payload: bytes, user: str, role: str,
                      max_bytes: int) -> web.Response:
    kind = "ok"
    spec = COMMANDS.get(name)
    try:
        parse_request(name, payload, max_bytes)
    except RequestError:
        kind = "invalid"
    if kind == "ok" and spec is not None and role in ROLES and not may_send(role, spec):
        kind = "role"
    reply = await dispatcher.run(name, payload, source=f"http:{user}", max_bytes=max_bytes,
                                 role=role)  # type: ignore[arg-type]
    if kind == "ok" and reply.get("status") != "ok":
        kind = "refused"
    return json_response(reply, status=STATUS[kind] if spec is not None or kind != "invalid" else 404)


def openapi(relay_id: str) -> dict[str, Any]:
    """OpenAPI 3.1 of the HTTP API; the command operations come from the registry."""
    error = {"description": "not logged in", "content": {"application/json": {"schema": REPLY_SCHEMA}}}
    json_object = {"application/json": {"schema": {"type": "object"}}}
    paths: dict[str, Any] = {
        "/healthz": {"get": {"summary": "the relay answers (no login needed)", "security": [],
                             "responses": {"200": {"description": "ok"}}}},
        "/api/state": {"get": {"summary": "the retained MQTT state: on air, mode, inputs, outputs, faults",
                               "responses": {"200": {"description": "state", "content": json_object},
                                             "401": error}}},
        "/api/health": {"get": {"summary": "figures: per input and output, host, MQTT, alerts",
                                "responses": {"200": {"description": "health", "content": json_object},
                                              "401": error}}},
        "/api/events": {"get": {
            "summary": "events of this session (the BEHAVIOUR §7 vocabulary), paged by sequence number",
            "parameters": [
                {"name": "after", "in": "query", "schema": {"type": "integer"},
                 "description": "events after this seq, oldest first"},
                {"name": "before", "in": "query", "schema": {"type": "integer"},
                 "description": "events before this seq, newest last (default: the latest)"},
                {"name": "limit", "in": "query",
                 "schema": {"type": "integer", "minimum": 1, "maximum": 1000}}],
            "responses": {"200": {"description": "a page of events", "content": json_object}, "401": error}}},
        "/api/live": {"get": {"summary": "Server-Sent Events: hello, state, health, event, thumbnails",
                              "responses": {"200": {"description": "text/event-stream"}, "401": error}}},
        "/api/preview": {"get": {"summary": "WebSocket: what is on air as fragmented MP4 for Media Source "
                                            "Extensions (a JSON text names each init segment's codecs)",
                                 "responses": {"101": {"description": "WebSocket"}, "401": error}}},
        "/api/commands": {"get": {"summary": "every command, its role and request schema",
                                  "responses": {"200": {"description": "commands", "content": json_object}}}},
        "/api/fleet": {"get": {"summary": "every relay on the MQTT broker: on air, worst tier, dashboard",
                               "responses": {"200": {"description": "relays", "content": json_object}}}},
        "/metrics": {"get": {"summary": "Prometheus text format",
                             "responses": {"200": {"description": "metrics"}, "401": error}}},
    }
    for spec in COMMANDS.values():
        paths[f"/api/commands/{spec.name}"] = {"post": {
            "operationId": spec.name,
            "summary": spec.summary,
            "description": (f"Needs the {spec.role} role."
                            + (" Changes what is on air." if spec.on_air else "")
                            + " Same body and reply as MQTT request/" + spec.name + "."),
            "requestBody": {"required": False, "content": {"application/json": {
                "schema": _schema(spec.request)}}},
            "responses": {code: {"description": text,
                                 "content": {"application/json": {"schema": REPLY_SCHEMA}}}
                          for code, text in (("200", "done"), ("400", "malformed request"),
                                             ("401", "not logged in"), ("403", f"needs the {spec.role} role"),
                                             ("409", "refused by the relay"))},
        }}
    return {
        "openapi": "3.1.0",
        "info": {"title": f"Relay {relay_id}", "version": __version__,
                 "description": "The HTTP API of one relay (BEHAVIOUR §7a). Log in on /login (cookie; "
                                "send the X-CSRF-Token from /api/me with every POST) or send Authorization: "
                                "Bearer <token> (a user's token from [http] users)."},
        "components": {"securitySchemes": {
            "cookie": {"type": "apiKey", "in": "cookie", "name": "relay_session"},
            "token": {"type": "http", "scheme": "bearer"}}},
        "security": [{"cookie": []}, {"token": []}],
        "paths": paths,
    }
