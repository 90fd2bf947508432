"""A loopback HTTP server speaking the Azure Resource Manager paths of Data Factory.

Enough of the REST API for the real ``DataFactoryManagementClient`` to list pipelines, start
runs, poll them, cancel them, query activity runs and list/start/stop triggers. Runs move
through scripted statuses (one per poll); faults (429 with Retry-After, 5xx, 404) can be
queued for the next matching request. Every request is recorded.
"""

from __future__ import annotations

import json
import re
import threading
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

PREFIX = re.compile(
    r"^/subscriptions/(?P<sub>[^/]+)/resourceGroups/(?P<rg>[^/]+)/providers/Microsoft\.DataFactory/"
    r"factories/(?P<factory>[^/]+)(?P<rest>/.*)?$"
)


@dataclass
class Run:
    run_id: str
    pipeline: str
    parameters: dict[str, Any]
    statuses: list[str]
    message: str = ""
    activities: list[dict[str, Any]] = field(default_factory=list)
    create_query: dict[str, str] = field(default_factory=dict)
    cancelled: bool = False

    def advance(self) -> str:
        if self.cancelled:
            return "Cancelled"
        if len(self.statuses) > 1:
            return self.statuses.pop(0)
        return self.statuses[0]

    def body(self, status: str) -> dict[str, Any]:
        finished = status in ("Succeeded", "Failed", "Cancelled")
        return {
            "runId": self.run_id,
            "pipelineName": self.pipeline,
            "parameters": {key: str(value) for key, value in self.parameters.items()},
            "status": status,
            "message": self.message if finished else "",
            "runStart": "2026-01-01T00:00:00Z",
            "runEnd": "2026-01-01T00:05:00Z" if finished else None,
            "durationInMs": 300000 if finished else None,
            "lastUpdated": "2026-01-01T00:05:00Z",
        }


@dataclass
class Fault:
    method: str
    path: re.Pattern[str]
    status: int
    headers: dict[str, str]
    code: str


class ArmState:
    """What the fake factory holds; tests script it directly."""

    def __init__(self, subscription: str, resource_group: str, factory: str) -> None:
        self.subscription, self.resource_group, self.factory = subscription, resource_group, factory
        self.pipelines: dict[str, list[str]] = {}  # pipeline -> statuses its next run goes through
        self.activities: dict[str, list[dict[str, Any]]] = {}
        self.failure_messages: dict[str, str] = {}
        self.runs: dict[str, Run] = {}
        self.triggers: dict[str, str] = {}
        self.faults: list[Fault] = []
        self.requests: list[tuple[str, str]] = []
        self.lock = threading.Lock()

    def add_pipeline(
        self,
        name: str,
        statuses: list[str] | None = None,
        activities: list[dict[str, Any]] | None = None,
        message: str = "",
    ) -> None:
        self.pipelines[name] = statuses or ["Queued", "InProgress", "Succeeded"]
        self.activities[name] = activities or []
        self.failure_messages[name] = message

    def fail_next(
        self,
        method: str,
        path: str,
        status: int,
        *,
        headers: dict[str, str] | None = None,
        code: str = "Error",
    ) -> None:
        """The next ``method`` request whose path matches the regex ``path`` gets ``status``."""
        self.faults.append(Fault(method, re.compile(path), status, headers or {}, code))


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
        pass

    def _send(self, status: int, body: Any = None, headers: dict[str, str] | None = None) -> None:
        payload = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(payload)

    def _error(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        self._send(status, {"error": {"code": code, "message": message}}, headers)

    def _handle(self, method: str) -> None:
        state = self.server.state
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        body = json.loads(raw) if raw else None
        query = {key: values[0] for key, values in parse_qs(parts.query).items()}
        with state.lock:
            state.requests.append((method, parts.path))
            if not self.headers.get("Authorization", "").startswith("Bearer "):
                return self._error(401, "AuthenticationFailed", "no bearer token")
            for fault in list(state.faults):
                if fault.method == method and fault.path.search(parts.path):
                    state.faults.remove(fault)
                    return self._error(fault.status, fault.code, f"injected {fault.status}", fault.headers)
            match = PREFIX.match(parts.path)
            if (
                match is None
                or match["sub"] != state.subscription
                or match["rg"] != state.resource_group
                or match["factory"] != state.factory
            ):
                return self._error(404, "ResourceNotFound", f"factory not found: {parts.path}")
            return self._route(method, match["rest"] or "", body, query)

    def _route(self, method: str, rest: str, body: Any, query: dict[str, str]) -> None:
        state = self.server.state
        if method == "GET" and rest == "":
            return self._send(200, {"name": state.factory, "properties": {"provisioningState": "Succeeded"}})
        if method == "GET" and rest == "/pipelines":
            return self._send(
                200, {"value": [{"name": n, "properties": {"activities": []}} for n in state.pipelines]}
            )
        if m := re.fullmatch(r"/pipelines/([^/]+)/createRun", rest):
            name = m[1]
            if name not in state.pipelines:
                return self._error(404, "PipelineNotFound", f"pipeline {name} not found")
            parameters = dict(body or {})
            reference = query.get("referencePipelineRunId")
            if reference:
                parameters = dict(state.runs[reference].parameters)
            run = Run(
                str(uuid.uuid4()),
                name,
                parameters,
                list(state.pipelines[name]),
                state.failure_messages[name],
                state.activities[name],
                query,
            )
            state.runs[run.run_id] = run
            return self._send(200, {"runId": run.run_id})
        if m := re.fullmatch(r"/pipelineruns/([^/]+)(/cancel|/queryActivityruns)?", rest):
            run_or_none = state.runs.get(m[1])
            if run_or_none is None:
                return self._error(404, "PipelineRunNotFound", f"run {m[1]} not found")
            if m[2] == "/cancel":
                run_or_none.cancelled = True
                return self._send(200)
            if m[2] == "/queryActivityruns":
                if not body or "lastUpdatedAfter" not in body:
                    return self._error(400, "BadRequest", "lastUpdatedAfter is required")
                return self._send(200, {"value": run_or_none.activities})
            return self._send(200, run_or_none.body(run_or_none.advance()))
        if method == "GET" and rest == "/triggers":
            value = [
                {"name": n, "properties": {"type": "ScheduleTrigger", "runtimeState": s}}
                for n, s in state.triggers.items()
            ]
            return self._send(200, {"value": value})
        if m := re.fullmatch(r"/triggers/([^/]+)/(start|stop)", rest):
            if m[1] not in state.triggers:
                return self._error(404, "TriggerNotFound", f"trigger {m[1]} not found")
            state.triggers[m[1]] = "Started" if m[2] == "start" else "Stopped"
            return self._send(200)
        return self._error(404, "NotFound", f"no route for {method} {rest}")

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, state: ArmState) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.state = state


class ArmServer:
    """Start with ``ArmServer(state)``; ``base_url`` for the client; ``stop()`` at the end."""

    def __init__(self, state: ArmState) -> None:
        self.state = state
        self._server = _Server(state)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()
