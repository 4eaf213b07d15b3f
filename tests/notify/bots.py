"""A local stand-in for the 钉钉/企业微信/飞书 bot endpoints and a generic webhook, over real HTTP.

It listens on a free 127.0.0.1 port (uvicorn + Starlette), checks each request the way the
vendors document it (DingTalk 加签 in the query, Feishu 签名 in the body, the bot key or token in
the URL), records it, and answers either the vendor's success or a scripted failure: an HTTP
status, a 429, or HTTP 200 with an error code in the JSON body.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import socket
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

DINGTALK_TOKEN = "dt0ken5ecretaccess9f3a7c"
DINGTALK_SECRET = "SECd1ngta1ksecretvalue0123456789abcdef"
WECOM_KEY = "693a91f6-7bbb-4bc4-97a0-0ec2sifa5aaa"
FEISHU_TOKEN = "5e3d587e-d78e-4a07-bd07-265f269f86fd"
FEISHU_SECRET = "fe1shuS1gnSecretXyZ"
WEBHOOK_SECRET = "webhook-hmac-secret-42"
ALL_SECRETS = (
    DINGTALK_TOKEN,
    DINGTALK_SECRET,
    WECOM_KEY,
    FEISHU_TOKEN,
    FEISHU_SECRET,
    WEBHOOK_SECRET,
)


@dataclass(frozen=True)
class Answer:
    """A scripted reply: HTTP status, JSON body (None: the vendor's success) and headers."""

    status: int = 200
    body: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Received:
    kind: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    raw: bytes
    at: float
    problem: str | None

    @property
    def json(self) -> Any:
        return json.loads(self.raw)


SUCCESS = {
    "dingtalk": {"errcode": 0, "errmsg": "ok"},
    "wecom": {"errcode": 0, "errmsg": "ok"},
    "feishu": {"code": 0, "msg": "success", "data": {}},
    "webhook": {"ok": True},
}
SIGN_FAILED = {
    "dingtalk": {"errcode": 310000, "errmsg": "sign not match"},
    "wecom": {"errcode": 93000, "errmsg": "invalid webhook url"},
    "feishu": {"code": 19021, "msg": "sign match fail or timestamp is not within one hour"},
    "webhook": {"error": "bad signature"},
}


def dingtalk_expected_sign(timestamp: str, secret: str) -> str:
    """The vendor's documented recipe, written out independently of edumon's code."""
    string_to_sign = f"{timestamp}\n{secret}"
    mac = hmac.new(secret.encode("utf-8"), string_to_sign.encode("utf-8"), digestmod="sha256")
    return base64.b64encode(mac.digest()).decode()


def feishu_expected_sign(timestamp: str, secret: str) -> str:
    string_to_sign = f"{timestamp}\n{secret}"
    mac = hmac.new(string_to_sign.encode("utf-8"), digestmod=hashlib.sha256)
    return base64.b64encode(mac.digest()).decode()


class BotServer:
    """The endpoints, their recorded requests and their scripted answers."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.scripts: dict[str, deque[Answer]] = {k: deque() for k in SUCCESS}
        self.base = ""
        self._changed = asyncio.Event()

    def url(self, kind: str) -> str:
        return {
            "dingtalk": f"{self.base}/robot/send?access_token={DINGTALK_TOKEN}",
            "wecom": f"{self.base}/cgi-bin/webhook/send?key={WECOM_KEY}",
            "feishu": f"{self.base}/open-apis/bot/v2/hook/{FEISHU_TOKEN}",
            "webhook": f"{self.base}/hooks/edumon",
        }[kind]

    def script(self, kind: str, *answers: Answer) -> None:
        self.scripts[kind].extend(answers)

    def delivered(self, kind: str | None = None) -> list[Received]:
        """Requests the bot took (signature right, answered with success)."""
        return [r for r in self.received if (kind is None or r.kind == kind) and r.problem is None]

    async def wait_for(
        self, predicate: Callable[[], bool], what: str, deadline: float = 20.0
    ) -> None:
        """Wait until ``predicate()`` holds after a request, failing after ``deadline`` s."""
        async with asyncio.timeout(deadline):
            while not predicate():
                self._changed.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(0.05):  # predicates may read other state too
                        await self._changed.wait()
        assert predicate(), what

    def _check(self, kind: str, request: Request, query: dict[str, str], raw: bytes) -> str | None:
        """The vendor's own checks: the URL's key, the signature and the payload's shape."""
        try:
            body = json.loads(raw)
        except ValueError:
            return "body is not JSON"
        if request.headers.get("content-type", "").split(";")[0] != "application/json":
            return "content-type is not application/json"
        if kind == "dingtalk":
            if query.get("access_token") != DINGTALK_TOKEN:
                return "access_token"
            ts = query.get("timestamp", "")
            if not ts.isdigit() or abs(int(ts) / 1000 - time.time()) > 3600:
                return "timestamp"
            if query.get("sign") != dingtalk_expected_sign(ts, DINGTALK_SECRET):
                return "sign"
            md = body.get("markdown", {})
            if body.get("msgtype") != "markdown" or not md.get("title") or not md.get("text"):
                return "payload"
        elif kind == "wecom":
            if query.get("key") != WECOM_KEY:
                return "key"
            content = body.get("markdown", {}).get("content", "")
            if body.get("msgtype") != "markdown" or not content:
                return "payload"
            if len(content.encode()) > 4096:
                return "content exceeds 4096 bytes"
        elif kind == "feishu":
            ts = str(body.get("timestamp", ""))
            if not ts.isdigit() or abs(int(ts) - time.time()) > 3600:
                return "timestamp"
            if body.get("sign") != feishu_expected_sign(ts, FEISHU_SECRET):
                return "sign"
            if body.get("msg_type") != "interactive" or "card" not in body:
                return "payload"
        else:
            ts = request.headers.get("x-edumon-timestamp", "")
            mac = hmac.new(WEBHOOK_SECRET.encode(), f"{ts}.".encode() + raw, hashlib.sha256)
            if request.headers.get("x-edumon-signature") != "sha256=" + mac.hexdigest():
                return "signature"
        return None

    def app(self) -> Starlette:
        def endpoint(kind: str) -> Callable[[Request], Any]:
            async def handle(request: Request) -> Response:
                raw = await request.body()
                query = {k: v[0] for k, v in parse_qs(request.url.query).items()}
                problem = self._check(kind, request, query, raw)
                answer = (
                    None
                    if problem
                    else (self.scripts[kind].popleft() if self.scripts[kind] else None)
                )
                if answer is not None and (answer.status != 200 or answer.body):
                    problem = f"scripted {answer.status} {answer.body}"
                self.received.append(
                    Received(
                        kind,
                        request.url.path,
                        query,
                        dict(request.headers),
                        raw,
                        time.time(),
                        problem,
                    )
                )
                self._changed.set()
                if problem and answer is None:  # the vendor's own error for a bad request
                    return JSONResponse(SIGN_FAILED[kind], 401 if kind == "webhook" else 200)
                if answer is not None and (answer.status != 200 or answer.body):
                    return JSONResponse(answer.body or {}, answer.status, headers=answer.headers)
                return JSONResponse(SUCCESS[kind])

            return handle

        return Starlette(
            routes=[
                Route("/robot/send", endpoint("dingtalk"), methods=["POST"]),
                Route("/cgi-bin/webhook/send", endpoint("wecom"), methods=["POST"]),
                Route("/open-apis/bot/v2/hook/{token}", endpoint("feishu"), methods=["POST"]),
                Route("/hooks/edumon", endpoint("webhook"), methods=["POST"]),
            ]
        )


@contextlib.asynccontextmanager
async def serve_bots() -> AsyncIterator[BotServer]:
    """Run a BotServer on a free 127.0.0.1 port for the duration of the block."""
    bots = BotServer()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    sock.setblocking(False)
    bots.base = f"http://127.0.0.1:{sock.getsockname()[1]}"
    server = uvicorn.Server(
        uvicorn.Config(bots.app(), log_config=None, access_log=False, lifespan="off")
    )
    task = asyncio.create_task(server.serve(sockets=[sock]), name="bot-server")
    try:
        async with asyncio.timeout(10):
            while not server.started:  # noqa: ASYNC110 - uvicorn has no event for it
                await asyncio.sleep(0.01)
        yield bots
    finally:
        server.should_exit = True
        await task
        sock.close()
