"""The dashboard, the HTTP API and ``/metrics`` (BEHAVIOUR §7a), served by `relay run` on its
own event loop with aiohttp when ``[http] listen`` is set.

Everything but ``/healthz`` and the login page needs a login: a session cookie
(HttpOnly, SameSite=Strict) from ``/login``, or an API token (``Authorization: Bearer``)
for scripts and Prometheus. A state-changing request made with the cookie must also
carry the session's CSRF token (``X-CSRF-Token``) and, when the browser says where it
comes from (``Origin``), come from this very site. Nothing here blocks the loop: password
checks, pictures and reports run in worker threads.

The port is bounded like the RTMP port (door.py, docs/SECURITY.md): sockets per address
and in all, header and body deadlines, an idle timeout, live streams per account, a Host
allow-list; every password or token guess is counted before it is checked.
"""

from __future__ import annotations

import asyncio
import collections
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from importlib import resources
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote, urlsplit

from aiohttp import web

from relay import __version__, i18n
from relay.control.commands import Dispatcher, Outcome, Request
from relay.control.fleet import FleetWatch
from relay.control.http import pages
from relay.control.http.auth import Accounts, Guess, LoginLimiter, Session, Sessions
from relay.control.http.command_routes import command_list, json_response, openapi, run_command
from relay.control.http.door import (
    ClientAddresses,
    ConnectionGate,
    GatedConnection,
    HostAllowList,
    read_body,
    safe_next,
    tls_context,
)
from relay.control.http.live import HEARTBEAT_S, LiveFeed, LiveSource, Page
from relay.control.http.metrics import Metrics
from relay.control.http.preview import ProgramPreview
from relay.log import RateLimit, get_logger
from relay.settings import HttpSettings, split_host_port

log = get_logger("relay.http")
LISTEN_BACKLOG = 64  # accepted in one go before the gate sees them: a flood holds this many more at once

COOKIE = "relay_session"
MAX_BODY = 64 * 1024
MAX_REQUEST_BYTES = 4096  # a command's JSON body, as on MQTT
PUBLIC = frozenset({"/healthz", "/login", "/static/login.css", "/static/favicon.svg"})
UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})
TOKEN_GUESSER = "(token)"  # the limiter's account name for Bearer token guesses
CSP = ("default-src 'self'; img-src 'self' data: blob:; media-src 'self' blob:; style-src 'self'; "
       "script-src 'self'; "
       "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class HttpSource(LiveSource, Protocol):
    """What the HTTP side reads from the relay and where its commands run (its control API)."""

    commands: Dispatcher  # the relay's one dispatcher, shared with MQTT

    async def execute(self, request: Request) -> Outcome:
        ...


@dataclass(frozen=True, slots=True)
class Identity:
    user: str
    role: str
    via: str  # "session" or "token"
    session: Session | None = None

    def still_valid(self, sessions: Sessions) -> bool:
        return self.session is None or sessions.alive(self.session)


IDENTITY = web.RequestKey("identity", Identity)  # who sent the request, set by _auth


def public_url(settings: HttpSettings, port: int) -> str:
    """How people reach this dashboard: `public_url`, else this PC's name and the port."""
    if settings.public_url:
        return settings.public_url
    host, _ = split_host_port(settings.listen or ":0")
    if host in ("0.0.0.0", "::", ""):
        host = socket.gethostname()
    if ":" in host:
        host = f"[{host}]"
    scheme = "https" if settings.tls_cert and settings.tls_key else "http"
    return f"{scheme}://{host}:{port}/"


def _static(name: str) -> bytes:
    return resources.files("relay.control.http").joinpath("static", name).read_bytes()


CONTENT_TYPES = {".html": "text/html", ".css": "text/css", ".js": "text/javascript",
                 ".svg": "image/svg+xml", ".png": "image/png"}


class HttpServer:
    def __init__(self, relay: HttpSource, settings: HttpSettings, relay_id: str, *,
                 journal_path: str | None = None,
                 extra_health: Callable[[], dict[str, Any]] = dict,
                 clock: Callable[[], float] = time.monotonic, fleet_only: bool = False) -> None:
        # fleet_only: `relay dashboard` on a monitoring PC: the login and the fleet page only
        self.fleet_only = fleet_only
        self.relay = relay
        self.settings = settings
        self.relay_id = relay_id
        self.journal_path = journal_path
        # `[recording] path` (push/recording.py): the segments served to logged-in users; a
        # reload may change it (relay/reload.py)
        self.recording_dir: Path | None = None
        self.extra_health = extra_health
        self.accounts: Accounts | None = None  # built in start(): hashing takes a moment
        self.sessions = Sessions(settings.session_hours * 3600)
        self.limiter = LoginLimiter(settings.login_attempts, settings.login_window_s, clock)
        self.clients = ClientAddresses(settings.trusted_proxies)
        self.hosts = HostAllowList(settings)
        self.gate = ConnectionGate(settings.max_connections, settings.max_connections_per_address,
                                   self.clients.trusted)
        self.tls = bool(settings.tls_cert and settings.tls_key)
        # what peers can make us say: one line a second each, the next says how many were held
        self._said = {kind: RateLimit(1, clock) for kind in ("limited", "failed", "token", "host")}
        self._live_pages: dict[str, collections.OrderedDict[Page, None]] = {}  # account → open live pages
        self._session_pages: dict[bytes, set[Page]] = {}  # session → its open live pages
        self.sessions.on_end.append(self._session_ended)
        self._listener: asyncio.Server | None = None
        self.live = LiveFeed(relay, thumbnail_interval_s=settings.thumbnail_interval_s,
                             extra_health=extra_health)
        self.metrics = Metrics(relay_id, relay.state, relay.health, extra_health)
        self.commands = relay.commands
        self.preview = ProgramPreview()  # what is on air, moving (the relay's on-air packets)
        # a relay's control API reaches its media graph; `relay dashboard` serves none
        self._program_taps: list[Callable[[Any], None]] | None = getattr(
            getattr(relay, "graph", None), "program_taps", None)
        self.fleet: FleetWatch | None = None  # every relay on the broker, when [http] fleet is on
        self._runner: web.AppRunner | None = None
        self.port = 0
        self.url = ""

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        self.accounts = await asyncio.to_thread(Accounts, list(self.settings.users))
        app = web.Application(middlewares=[self._headers, self._door, self._auth], client_max_size=MAX_BODY)
        self._add_routes(app)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        host, port = split_host_port(self.settings.listen or "127.0.0.1:0")
        context = tls_context(self.settings.tls_cert or "", self.settings.tls_key or "") if self.tls else None
        manager, loop = self._runner.server, asyncio.get_running_loop()
        assert manager is not None

        def connection() -> GatedConnection:  # aiohttp's handler, admitted by the gate, with deadlines
            return GatedConnection(manager, self.gate, self.settings.request_timeout_s, loop=loop,
                                   access_log=None, keepalive_timeout=self.settings.idle_timeout_s)

        self._listener = await loop.create_server(
            connection, host or None, port, ssl=context, backlog=LISTEN_BACKLOG,
            ssl_handshake_timeout=self.settings.request_timeout_s if context else None)
        sockets = list(self._listener.sockets or [])
        self.port = int(sockets[0].getsockname()[1]) if sockets else port
        self.url = public_url(self.settings, self.port)
        if not self.fleet_only:
            self.relay.bus.subscribe(self.metrics.counters)
            self.live.start(self.relay_id)
            if self._program_taps is not None:
                self._program_taps.append(self.preview.on_packet)
        log.info("http_listening", host=host, port=self.port, url=self.url)

    async def stop(self) -> None:
        if self.fleet is not None:
            await self.fleet.stop()
        if self._program_taps is not None and self.preview.on_packet in self._program_taps:
            self._program_taps.remove(self.preview.on_packet)
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        await self.live.stop()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # -- middlewares ------------------------------------------------------------------------

    @web.middleware
    async def _headers(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            response = await handler(request)
        except web.HTTPException as raised:  # a redirect or 404 is a response too: same headers
            _secure_headers(raised.headers)
            raise
        _secure_headers(response.headers)
        return response

    @web.middleware
    async def _door(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """The Host allow-list, then the body's deadline (headers had theirs: GatedConnection)."""
        if not self.hosts.allows(request.headers.get("Host")):
            held = self._said["host"].allow()
            if held is not None:
                log.warning("http_host_refused", host=str(request.headers.get("Host"))[:80],
                            client=self.clients.of(request), **_held(held))
            return web.Response(text="unknown host name (see [http] allowed_hosts)\n", status=421)
        if request.body_exists and await read_body(request, self.settings.request_timeout_s) is None:
            return web.Response(text="request body too slow\n", status=408, headers={"Connection": "close"})
        return await handler(request)

    @web.middleware
    async def _auth(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path in PUBLIC:
            return await handler(request)
        identity = self.identify(request)
        if isinstance(identity, float):
            limited = json_response({"status": "error", "error": f"too many wrong tokens: try again in "
                                     f"{identity:.0f} s"}, status=429)
            limited.headers["Retry-After"] = str(max(1, round(identity)))
            return limited
        if identity is None:
            if request.path.startswith(("/api/", "/metrics")) or request.method != "GET":
                return json_response({"status": "error", "error": "login needed (session cookie or "
                              "Authorization: Bearer token)"}, status=401)
            raise web.HTTPSeeOther(f"/login?next={quote(request.path_qs, safe='/')}"
                                   if request.path != "/" else "/login")
        if request.method in UNSAFE and identity.via == "session":
            problem = self._cross_site(request, identity)
            if problem:
                log.warning("http_request_refused", path=request.path, user=identity.user, reason=problem)
                return json_response({"status": "error", "error": problem}, status=403)
        request[IDENTITY] = identity
        return await handler(request)

    def identify(self, request: web.Request) -> Identity | float | None:
        """Who sends this request (None: nobody logged in; a float: token guesses are
        limited for this client, seconds to wait)."""
        header = request.headers.get("Authorization", "")
        if header.startswith("Bearer ") and self.accounts is not None:
            return self._token_identity(request, header.removeprefix("Bearer ").strip())
        session = self.sessions.get(request.cookies.get(COOKIE))
        return None if session is None else Identity(session.user, session.role, "session", session)

    def _token_identity(self, request: web.Request, token: str) -> Identity | float | None:
        """A token is a guess like a password: limited per client (and from clients it was
        never right from, per window in all), counted before it is checked, logged."""
        assert self.accounts is not None
        client = self.clients.of(request)
        guess = self.limiter.admit(client, TOKEN_GUESSER)
        if not isinstance(guess, Guess):
            self._say("limited", "http_token_limited", client=client, retry_after_s=round(guess))
            return guess
        account = self.accounts.check_token(token)
        if account is None:
            self._say("token", "http_token_refused", client=client, path=request.path[:80])
            return None
        self.limiter.forgive(guess)
        return Identity(account.name, account.role, "token")

    def _say(self, kind: str, event: str, **fields: Any) -> None:
        """A warning about a peer, within its budget (one a second, then a count)."""
        held = self._said[kind].allow()
        if held is not None:
            log.warning(event, **fields, **_held(held))

    def _cross_site(self, request: web.Request, identity: Identity) -> str | None:
        origin = request.headers.get("Origin")
        if origin is not None and not _same_origin(origin, request):
            return f"cross-site request refused (from {origin[:80]})"
        assert identity.session is not None
        if not identity.session.csrf_matches(request.headers.get("X-CSRF-Token")):
            return "missing or wrong X-CSRF-Token (reload the page)"
        return None

    # -- routes --------------------------------------------------------------------------

    def _add_routes(self, app: web.Application) -> None:
        r = app.router
        r.add_get("/healthz", self.healthz)
        r.add_get("/login", self.login_page)
        r.add_post("/login", self.login)
        r.add_post("/logout", self.logout)
        r.add_get("/static/{name}", self.static)
        r.add_get("/api/me", self.me)
        r.add_get("/fleet", self.page("fleet.html"))
        r.add_get("/api/fleet", self.fleet_list)
        r.add_get("/api/fleet/{relay}/thumbnail.jpg", self.fleet_thumbnail)
        if self.fleet_only:
            r.add_get("/", self.to_fleet)
            return
        r.add_get("/", self.page("index.html"))
        r.add_get("/api/state", self.state)
        r.add_get("/api/health", self.health)
        r.add_get("/api/events", self.events)
        r.add_get("/api/live", self.live_stream)
        r.add_get("/api/thumbnails/{key}.jpg", self.thumbnail)
        r.add_get("/api/preview", self.preview_stream)
        r.add_get("/api/reports", self.reports)
        r.add_get("/reports/{session}", self.report)
        r.add_get("/recordings/at", self.recording_at)
        r.add_get("/recordings/{name}", self.recording)
        r.add_get("/metrics", self.prometheus)
        r.add_get("/api/commands", self.command_list)
        r.add_post("/api/commands/{name}", self.command)
        r.add_get("/api/openapi.json", self.openapi)

    async def to_fleet(self, request: web.Request) -> web.Response:
        raise web.HTTPSeeOther("/fleet")

    async def healthz(self, request: web.Request) -> web.Response:
        return web.Response(text="ok\n", headers={"Cache-Control": "no-store"})

    def page(self, name: str) -> Handler:
        async def serve(request: web.Request) -> web.Response:
            lang = pages.language(request, self.settings.language)
            return web.Response(text=pages.render(name, lang), content_type="text/html",
                                headers={"Cache-Control": "no-store", "Content-Language": lang,
                                         "Vary": "Accept-Language"})
        return serve

    async def static(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        kind = CONTENT_TYPES.get(name[name.rfind("."):]) if "." in name else None
        if kind is None or "/" in name or name.startswith("."):
            raise web.HTTPNotFound()
        try:
            body = _static(name)
        except (FileNotFoundError, IsADirectoryError):
            raise web.HTTPNotFound() from None
        return web.Response(body=body, content_type=kind, headers={"Cache-Control": "no-cache"})

    # login

    async def login_page(self, request: web.Request, message: tuple[str, dict[str, Any]] | None = None,
                         status: int = 200) -> web.Response:
        lang = pages.language(request, self.settings.language)
        target = safe_next(request.query.get("next") or "/")
        html = pages.render("login.html", lang, {"relay": self.relay_id, "next": target,
                                                 "message": i18n.t(lang, message[0], **message[1])
                                                 if message else ""})
        return web.Response(text=html, content_type="text/html", status=status,
                            headers={"Cache-Control": "no-store", "Content-Language": lang,
                                     "Vary": "Accept-Language"})

    async def login(self, request: web.Request) -> web.Response:
        origin = request.headers.get("Origin")
        if origin is not None and not _same_origin(origin, request):
            return web.Response(text="cross-site login refused", status=403)
        form = await request.post()
        user, password = str(form.get("user") or "")[:64], str(form.get("password") or "")[:256]
        target = safe_next(str(form.get("next") or "/"))
        client = self.clients.of(request)
        assert self.accounts is not None
        # a name that is no account may be a password typed in the wrong field: never logged
        shown = user if self.accounts.exists(user) else "(unknown)"
        guess = self.limiter.admit(client, user)  # counted now, before the ~0.5 s check
        if not isinstance(guess, Guess):
            self._say("limited", "http_login_limited", user=shown, client=client, retry_after_s=round(guess))
            response = await self.login_page(request, ("login.too_many", {"seconds": f"{guess:.0f}"}),
                                              status=429)
            response.headers["Retry-After"] = str(max(1, round(guess)))
            return response
        account = await asyncio.to_thread(self.accounts.check_password, user, password,
                                          known=self.limiter.knows(client, user))
        if account is None:
            self._say("failed", "http_login_failed", user=shown, client=client)
            return await self.login_page(request, ("login.wrong", {}), status=401)
        self.limiter.forgive(guess)
        cookie, _ = self.sessions.create(account)
        log.info("http_login", user=account.name, role=account.role, client=client)
        response = web.HTTPSeeOther(target)
        response.set_cookie(COOKIE, cookie, httponly=True, samesite="Strict", path="/",
                            secure=self.settings.secure_cookie or self.tls,
                            max_age=int(self.sessions.lifetime_s))
        raise response

    async def logout(self, request: web.Request) -> web.Response:
        self.sessions.end(request.cookies.get(COOKIE))  # its live pages end with it (_session_ended)
        response = web.HTTPSeeOther("/login")
        response.del_cookie(COOKIE, path="/")
        raise response

    # reading

    async def me(self, request: web.Request) -> web.Response:
        who: Identity = request[IDENTITY]
        return json_response({"user": who.user, "role": who.role, "relay": self.relay_id,
                              "version": __version__,
                      "csrf": who.session.csrf if who.session is not None else None})

    async def state(self, request: web.Request) -> web.Response:
        return json_response({**self.relay.state(), "relay": self.relay_id})

    async def health(self, request: web.Request) -> web.Response:
        return json_response({**self.relay.health(), **self.extra_health()})

    async def events(self, request: web.Request) -> web.Response:
        try:
            after = _int(request.query.get("after"))
            before = _int(request.query.get("before"))
            limit = min(max(_int(request.query.get("limit")) or 100, 1), 1000)
        except ValueError:
            return json_response({"status": "error", "error": "after, before and limit must be integers"},
                                 status=400)
        return json_response(self.live.events_page(after, before, limit))

    async def live_stream(self, request: web.Request) -> web.StreamResponse:
        who: Identity = request[IDENTITY]
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                               "Cache-Control": "no-store", "X-Accel-Buffering": "no"})
        await response.prepare(request)
        hello = {"user": who.user, "role": who.role, "relay": self.relay_id, "version": __version__,
                 "csrf": who.session.csrf if who.session is not None else None, **self.hello_extra(who)}
        page = self._open_page(who)
        try:
            async for chunk in self.live.stream(hello, page):
                if not who.still_valid(self.sessions):  # expired (logout closes it at once)
                    break
                await response.write(chunk.encode())
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            self._close_page(who, page)
        return response

    def _open_page(self, who: Identity) -> Page:
        """A live page for this account; beyond ``live_per_account`` its oldest is closed."""
        page = Page()
        mine = self._live_pages.setdefault(who.user, collections.OrderedDict())
        mine[page] = None
        while len(mine) > self.settings.live_per_account:
            oldest = next(iter(mine))
            del mine[oldest]
            self.live.close(oldest)
        if who.session is not None:
            self._session_pages.setdefault(who.session.key, set()).add(page)
        return page

    def _close_page(self, who: Identity, page: Page) -> None:
        mine = self._live_pages.get(who.user)
        if mine is not None:
            mine.pop(page, None)
            if not mine:
                del self._live_pages[who.user]
        if who.session is not None:
            pages_ = self._session_pages.get(who.session.key)
            if pages_ is not None:
                pages_.discard(page)
                if not pages_:
                    del self._session_pages[who.session.key]

    def _session_ended(self, session: Session) -> None:
        """Logout, expiry or eviction: that session's live pages end now."""
        self.preview.end_session(session.key)
        for page in self._session_pages.pop(session.key, set()):
            self.live.close(page)

    @property
    def live_pages(self) -> dict[str, int]:
        return {user: len(pages_) for user, pages_ in self._live_pages.items()}

    async def preview_stream(self, request: web.Request) -> web.StreamResponse:
        """The program preview (preview.py) over a WebSocket: a JSON text message names
        each init segment's codecs, every binary message is MP4 to append as it is."""
        who: Identity = request[IDENTITY]
        ws = web.WebSocketResponse(heartbeat=HEARTBEAT_S)
        await ws.prepare(request)
        # a live stream like a page's: live_per_account bounds them; a logout ends them
        viewer = self.preview.join(who.user, who.session.key if who.session else None,
                                   self.settings.live_per_account)
        # the page sends nothing; reading is how its close (or a dead link) is noticed
        reading = asyncio.create_task(_drain(ws), name="http-preview-read")
        try:
            while not reading.done():
                getting = asyncio.ensure_future(viewer.next())
                await asyncio.wait({getting, reading}, return_when=asyncio.FIRST_COMPLETED)
                if not getting.done():
                    getting.cancel()
                    break
                message = getting.result()
                if message is None or not who.still_valid(self.sessions):
                    break
                if isinstance(message, str):
                    await ws.send_str(message)
                else:
                    await ws.send_bytes(message)
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            self.preview.leave(viewer)
            reading.cancel()
            await ws.close()
        return ws

    def hello_extra(self, who: Identity) -> dict[str, Any]:
        """More for a page's first message: the commands, from the registry."""
        return {"commands": command_list(who.role)}

    async def command_list(self, request: web.Request) -> web.Response:
        who: Identity = request[IDENTITY]
        return json_response({"commands": command_list(who.role)})

    async def command(self, request: web.Request) -> web.Response:
        who: Identity = request[IDENTITY]
        payload = await request.read()
        return await run_command(self.commands, request.match_info["name"], payload, who.user, who.role,
                                 MAX_REQUEST_BYTES)

    async def fleet_list(self, request: web.Request) -> web.Response:
        if self.fleet is None:
            return json_response({"connected": False, "relays": [],
                                  "error": "no fleet: MQTT or [http] fleet is off"})
        return json_response({"connected": self.fleet.connected, "relays": self.fleet.listing()})

    async def fleet_thumbnail(self, request: web.Request) -> web.Response:
        member = self.fleet.members.get(request.match_info["relay"]) if self.fleet is not None else None
        if member is None or member.thumbnail is None:
            raise web.HTTPNotFound()
        return web.Response(body=member.thumbnail, content_type="image/jpeg",
                            headers={"Cache-Control": "no-store"})

    async def openapi(self, request: web.Request) -> web.Response:
        return json_response(openapi(self.relay_id))

    async def thumbnail(self, request: web.Request) -> web.Response:
        jpeg = self.live.thumbnails.get(request.match_info["key"])
        if jpeg is None:
            raise web.HTTPNotFound()
        return web.Response(body=jpeg, content_type="image/jpeg", headers={"Cache-Control": "no-store"})

    async def prometheus(self, request: web.Request) -> web.Response:
        body = await self.metrics.page()  # the snapshot on the loop, the rendering in a worker
        return web.Response(body=body, headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8",
                                                "Cache-Control": "no-store"})

    # reports

    async def reports(self, request: web.Request) -> web.Response:
        if not self.journal_path:
            return json_response({"sessions": []})
        from relay.journal.store import JournalError, list_sessions, reading

        def read() -> list[dict[str, Any]]:
            with reading(self.journal_path or "") as conn:
                return [{"id": s.id, "relay": s.relay, "started": s.started, "stopped": s.stopped,
                         "stop_reason": s.stop_reason, "url": f"/reports/{s.id}"}
                        for s in list_sessions(conn)]
        try:
            sessions = await asyncio.to_thread(read)
        except JournalError as e:
            return json_response({"sessions": [], "error": str(e)})
        return json_response({"sessions": sessions[::-1]})

    async def report(self, request: web.Request) -> web.Response:
        from relay.journal.report import REPORT_CSP, render_report
        from relay.journal.review import SessionNotFound
        from relay.journal.store import JournalError

        session = request.match_info["session"].removesuffix(".html")
        if not self.journal_path:
            raise web.HTTPNotFound(text="no journal")
        try:
            lang = pages.language(request, self.settings.language)
            html = await asyncio.to_thread(render_report, self.journal_path, session, lambda _: None, lang,
                                           self._recording_link)
        except (SessionNotFound, JournalError) as e:
            raise web.HTTPNotFound(text=str(e)) from None
        # the report's own CSP: the page's style-src 'self' would refuse its inline <style>
        return web.Response(text=html, content_type="text/html",
                            headers={"Cache-Control": "no-store", "Content-Security-Policy": REPORT_CSP,
                                     "Content-Language": lang, "Vary": "Accept-Language"})


    # -- the show's recording (push/segments.py) --------------------------------------------

    def _recording_link(self, relay_id: str, ts: float) -> str | None:
        """A moment of the show in the recording, as this server serves it (the report's links)."""
        from relay.push.segments import locate

        directory = self.recording_dir
        moment = None if directory is None else locate(directory, relay_id, ts)
        return None if moment is None else f"/recordings/{quote(moment.file)}#t={int(moment.offset_s)}"

    async def recording_at(self, request: web.Request) -> web.Response:
        """``/recordings/at?ts=<UTC ISO time or epoch>``: to the segment playing from that
        moment (the dashboard's event feed links here), or 404 when nothing was recorded then."""
        text = request.query.get("ts", "")
        try:
            ts = float(text) if text.replace(".", "", 1).isdigit() else datetime.fromisoformat(
                text.replace("Z", "+00:00")).timestamp()
        except ValueError:
            raise web.HTTPBadRequest(text="ts: expected a UTC ISO 8601 time or a Unix time") from None
        link = await asyncio.to_thread(self._recording_link, self.relay_id, ts)
        if link is None:
            raise web.HTTPNotFound(text="nothing was recorded at that moment")
        raise web.HTTPFound(link)

    async def recording(self, request: web.Request) -> web.StreamResponse:
        """One segment of this relay's recording (ranges served: the player seeks)."""
        from relay.push.segments import segments

        directory, name = self.recording_dir, request.match_info["name"]
        if directory is None:
            raise web.HTTPNotFound(text="no recording")
        # only a name this relay's listing holds: nothing else on the disk is reachable
        found = await asyncio.to_thread(segments, directory, self.relay_id)
        path = next((seg.path for seg in found if seg.path.name == name), None)
        if path is None:
            raise web.HTTPNotFound(text="no such segment")
        return web.FileResponse(path, headers={"Content-Type": "video/mp4", "Cache-Control": "no-store"})


async def _drain(ws: web.WebSocketResponse) -> None:
    async for _ in ws:
        pass


def _int(text: str | None) -> int | None:
    return None if text in (None, "") else int(text)


def _secure_headers(headers: Any) -> None:
    headers.setdefault("Content-Security-Policy", CSP)
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("Referrer-Policy", "same-origin")
    headers.setdefault("X-Frame-Options", "DENY")


def _held(held: int) -> dict[str, int]:
    return {"suppressed": held} if held else {}


def _same_origin(origin: str, request: web.Request) -> bool:
    try:
        parts = urlsplit(origin)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and parts.netloc == request.host

