"""``create_app(settings)``: the one place that composes the planes into a service.

The orchestrator and signalling never see each other; here each gets the other's
adapter. The app's state sits under the keys of ``web.keys``; each area (the API, the
calendar routes, the pages) declares its routes, added here, and none imports this
module. Everything long-lived (scheduler, event writer, signalling hub) is
started and stopped by the application's cleanup context, so every background
task has an owner.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Final

from aiohttp import web

from common.peers import guest_peer_id
from common.tasks import TaskSet
from orchestrator.booking.policy import BookingSettings
from orchestrator.calendars.feeds import FeedPoller
from orchestrator.calendars.jobs import CalendarJobs
from orchestrator.clock import Clock, SystemClock
from orchestrator.db import Database
from orchestrator.log_limit import FaultLogFilter
from orchestrator.sessions.guests import REVOCATION_MEMORY, recently_revoked
from orchestrator.sessions.readiness import latest_by_room
from orchestrator.sessions.scheduler import Scheduler
from orchestrator.sessions.tickets import TicketSigner
from signalling.protocol import IceServer
from signalling.server import SignallingServer, SignallingSettings
from signalling.turn import TurnConfig
from web import api, calendars, mailer
from web.adapters import OrchestratorEvents, SignallingControl
from web.alerts import Alerts
from web.booking_results import OneTimeResults
from web.database_errors import database_fault_middleware
from web.keys import ENVIRONMENTS, RESULTS, SERVICES
from web.proxy import forwarded_middleware
from web.services import LiveView, Services
from web.settings import Settings
from web.ui import (
    accounts,
    admin,
    approvals,
    booking,
    booking_detail,
    dashboard,
    guest,
    panel,
    usage,
)
from web.ui import base as ui
from web.ui.render import make_environments

log = logging.getLogger(__name__)

ROUTES: Final[tuple[list[web.AbstractRouteDef], ...]] = (
    api.routes,
    calendars.routes,
    ui.routes,
    accounts.routes,
    admin.routes,
    dashboard.routes,
    booking.routes,
    booking_detail.routes,
    approvals.routes,
    panel.routes,
    guest.routes,
    usage.routes,
)
"""Each area's routes, in the order the router tries them."""

NOTICE_WAIT: Final = 30.0
"""How long shutdown waits for release notices still being queued in the outbox."""


def turn_config(settings: Settings) -> TurnConfig:
    """The TURN servers and the secret that mints their credentials; TURN URLs without
    a secret (or a secret without URLs) is a configuration error, named without the
    secret."""
    secret = settings.read_turn_secret()
    if bool(settings.turn_urls) != bool(secret):
        raise ValueError("turn_urls and turn_secret (or turn_secret_file) go together")
    return TurnConfig(
        urls=settings.turn_urls, secret=secret, check_seconds=settings.turn_check_seconds
    )


def build_services(settings: Settings, clock: Clock | None = None) -> Services:
    clock = clock or SystemClock()
    settings.guest_camera()  # a malformed guest_video stops the start, with its name
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    db = Database(settings.effective_database_url, busy_wait=settings.database_busy_wait)
    signer = TicketSigner.load_or_create(settings.data_dir / "ticket-signing-key.pem")
    holder: dict[str, Scheduler] = {}

    async def room_online(room_id: str) -> None:
        await holder["scheduler"].room_connected(room_id)

    events = OrchestratorEvents(
        db,
        room_online,
        limit=settings.event_queue_limit,
        interval=settings.stats_write_interval,
        log_interval=settings.fault_log_interval,
    )
    live = LiveView()
    events.listeners.append(live.listen)
    alerts = Alerts(settings, clock)
    events.alerts = alerts
    signalling = SignallingServer(
        SignallingSettings(
            heartbeat_interval=settings.heartbeat_interval,
            heartbeat_timeout=settings.heartbeat_timeout,
            grace_seconds=settings.grace_seconds,
            mesh_cap=settings.mesh_cap,
            mesh_limit=settings.mesh_limit,
            janus_servers=settings.janus_servers(),
            sfu_cap=settings.sfu_cap,
            rate_per_second=settings.rate_per_second,
            rate_burst=settings.rate_burst,
            candidate_networks=settings.allowed_candidate_networks,
            ice_servers=(IceServer(urls=list(settings.stun_urls)),) if settings.stun_urls else (),
            turn=turn_config(settings),
            hello_timeout=settings.hello_timeout,
            unauthenticated_per_address=settings.unauthenticated_per_address,
            unauthenticated_total=settings.unauthenticated_total,
        ),
        events,
        clock=clock.now,
    )
    signalling.tickets.add_public_key(signer.kid, signer.public_key_pem())
    booking_settings = BookingSettings(
        horizon_days=settings.horizon_days, no_show_seconds=settings.no_show_seconds
    )
    scheduler = Scheduler(
        db,
        SignallingControl(signalling),
        signer,
        clock,
        poll_interval=settings.poll_interval,
        booking_settings=booking_settings,
        log_interval=settings.fault_log_interval,
        mesh_limit=settings.mesh_limit if settings.janus_urls else settings.mesh_cap,
        sfu_available=bool(settings.janus_urls),
    )
    holder["scheduler"] = scheduler
    calendars = CalendarJobs(db, clock, booking_settings, settings.fault_log_interval)
    return Services(
        settings,
        db,
        signer,
        signalling,
        scheduler,
        events,
        live,
        clock,
        calendars,
        booking_settings,
        alerts,
    )


def _tell_centres(services: Services, notices: TaskSet, released: list[tuple[str, str]]) -> None:
    """No-show releases reach staff on the dashboard (the session shows the room as
    released), in the log, and by email to the staff of the room's centre (queued in
    the outbox by a task in ``notices``, which the application awaits on shutdown)."""
    for session_id, room_id in released:
        log.warning("room %s released from session %s: no agent joined", room_id, session_id)
    notices.spawn(mailer.tell_centres(services, released))


async def _remember_withdrawn_guests(services: Services) -> None:
    """Signalling keeps guest revocations in memory: tell it again after a restart."""
    now = services.clock.now()
    revoked = await services.db.run(lambda s: recently_revoked(s, datetime.fromtimestamp(now, UTC)))
    for guest_id in revoked:
        await services.signalling.revoke_peer(
            guest_peer_id(guest_id), now + REVOCATION_MEMORY.total_seconds()
        )


async def _lifecycle(app: web.Application) -> AsyncIterator[None]:
    services = app[SERVICES]
    if services.settings.database_startup_check:
        # A damaged file stops the start (web/cli/serve.py says so and exits non-zero)
        # instead of failing requests one by one.
        await asyncio.to_thread(services.db.check)
    await asyncio.to_thread(services.db.migrate)
    services.live.readiness.update(await services.db.run(latest_by_room))
    services.events.start()
    await services.signalling.start()
    # One pass before listening: room credentials and session states are loaded
    # before the first room can knock.
    await services.scheduler.step()
    await _remember_withdrawn_guests(services)
    notices = TaskSet()
    hook = partial(_tell_centres, services, notices)
    services.scheduler.release_hooks.append(hook)
    loops = TaskSet()
    loops.spawn(services.scheduler.run(), name="scheduler")
    loops.spawn(
        FeedPoller(services.db, services.calendars.import_feed, services.clock).run(),
        name="feeds",
    )
    loops.spawn(services.calendars.run_caldav(services.settings.caldav_interval), name="caldav")
    if services.settings.smtp_host:
        loops.spawn(mailer.run_mailer(services), name="mailer")
    try:
        yield
    finally:
        await loops.close()
        services.scheduler.release_hooks.remove(hook)
        await notices.drain(NOTICE_WAIT)
        await notices.close()
        await services.signalling.close()
        await services.events.stop()
        await services.alerts.close()
        await services.db.close()


def create_app(settings: Settings, *, clock: Clock | None = None) -> web.Application:
    # Calendar imports may be up to 10 MB; the importer checks the exact cap.
    app = web.Application(
        middlewares=[
            forwarded_middleware(settings.trusted_proxies),
            api.error_middleware,
            # Inside the error middleware and around every other one (login sessions,
            # bearer tokens, pages): a database fault is a 503, never a 500.
            database_fault_middleware(
                busy_wait=settings.database_busy_wait, log_interval=settings.fault_log_interval
            ),
            api.auth_middleware,
            *ui.MIDDLEWARES,
        ],
        client_max_size=11 * 1024 * 1024,
    )
    app[SERVICES] = build_services(settings, clock)
    app[ENVIRONMENTS] = make_environments()
    app[RESULTS] = OneTimeResults()
    app.on_response_prepare.append(ui.security_headers)
    app.cleanup_ctx.append(_lifecycle)
    app.router.add_get("/ws", app[SERVICES].signalling.handle)
    app.router.add_get("/healthz", _health)
    app.router.add_get("/favicon.ico", _favicon)
    for routes in ROUTES:
        app.add_routes(routes)
    return app


async def _health(request: web.Request) -> web.Response:
    return web.json_response({"ok": True})


FAVICON: Final = Path(__file__).resolve().parent / "static" / "favicon.ico"


async def _favicon(request: web.Request) -> web.FileResponse:
    """Browsers ask for ``/favicon.ico`` on every page that links no icon (the room
    panel, the guest page, error pages): the icon drawn by ``scripts/favicon.py``."""
    return web.FileResponse(FAVICON, headers={"Cache-Control": "public, max-age=86400"})


def tls_context(settings: Settings) -> ssl.SSLContext | None:
    """TLS from a certificate chain and key (PEM): browsers grant the camera and the
    microphone only to secure pages. Both or neither must be given."""
    if settings.tls_cert is None and settings.tls_key is None:
        return None
    if settings.tls_cert is None or settings.tls_key is None:
        raise ValueError("TLS needs both a certificate (--tls-cert) and its key (--tls-key)")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(settings.tls_cert, settings.tls_key)
    return context


async def serve(settings: Settings, *, ready: asyncio.Event | None = None) -> None:
    """Run the service until cancelled, listening with a deep backlog: rooms connect
    in bursts at the top of the hour and aiohttp's default 128 would overflow.

    Background loops that log each failure with its traceback log a database fault
    as one line per ``fault_log_interval`` instead (``FaultLogFilter`` on the root
    logger's handlers, for as long as the service runs)."""
    fault_filter = FaultLogFilter(settings.fault_log_interval)
    handlers = list(logging.getLogger().handlers)
    for handler in handlers:
        handler.addFilter(fault_filter)
    try:
        await _serve(settings, ready)
    finally:
        for handler in handlers:
            handler.removeFilter(fault_filter)


async def _serve(settings: Settings, ready: asyncio.Event | None) -> None:
    app = create_app(settings)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    ssl_context = tls_context(settings)
    site = web.TCPSite(
        runner,
        settings.host,
        settings.port,
        backlog=settings.listen_backlog,
        ssl_context=ssl_context,
    )
    await site.start()
    scheme = "https" if ssl_context else "http"
    log.info("serving on %s://%s:%d/", scheme, settings.host, settings.port)
    if ready is not None:
        ready.set()
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()
