"""Signed, durable webhooks: every committed core event, to every endpoint that wants it.

The path of an event:

1. A service writes it to the outbox in the transaction of the change, so a
   rolled-back change sends nothing and a committed one is never lost.
2. The worker (:meth:`Webhooks.run_once`, in every serving process) fans new
   outbox rows out into one delivery per subscribed endpoint, marking the
   rows dispatched, in one short transaction (locked rows are skipped, so two
   processes never fan out one event twice).
3. It takes the oldest pending delivery of each endpoint (so one endpoint
   receives its events in order), leases it in a short transaction, POSTs it
   outside any transaction, and records the attempt. A 2xx delivers it;
   anything else (an error status, a timeout, a refused connection) schedules
   a retry with exponential backoff and jitter until ``give_up_after_seconds``
   (a day), when the delivery fails and the endpoint is marked failing.
   A process that dies mid-attempt leaves a lease that expires: the delivery
   is tried again (at least once; receivers dedupe by ``webhook-id``).

Targets must be public addresses unless ``[webhooks] allow_private_targets``
is set: checked when an endpoint is added and again, on the resolved
address, at every delivery (``guildhall.events.targets``). A refused
delivery is a failed attempt whose error says why; it is retried like any
other. Redirects are never followed: a 3xx answer is a failed attempt.
Neither the endpoint check (DNS) nor a delivery runs inside a transaction.

Deliveries follow the Standard Webhooks scheme (``webhook-id``,
``webhook-timestamp``, ``webhook-signature`` = HMAC-SHA256 with the
endpoint's ``whsec_`` secret), so receivers verify them with any Standard
Webhooks library. The body is SkyPANEL's ``{event, data, timestamp}``.
"""

from __future__ import annotations

import asyncio
import base64
import random
import re
import secrets
import time
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

import httpx
import orjson
from sqlalchemy import Select, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from standardwebhooks.webhooks import Webhook

from guildhall.config import WebhookSettings
from guildhall.core.actor import Actor
from guildhall.core.errors import Invalid, NotFound
from guildhall.db.base import utcnow
from guildhall.db.engine import Database
from guildhall.db.sql import rowcount
from guildhall.events import audit, targets
from guildhall.events.models import OutboxEvent, WebhookAttempt, WebhookDelivery, WebhookEndpoint
from guildhall.events.outbox import EVENTS
from guildhall.secrets import Sealer
from guildhall.times import iso_millis

URL = re.compile(r"https?://[^\s/$.?#][^\s]*", re.IGNORECASE)
LEASE_MARGIN = timedelta(seconds=30)
DISPATCH_BATCH = 200
_DELIVERY_COLUMNS = (
    WebhookDelivery.id,
    WebhookDelivery.endpoint_id,
    WebhookDelivery.event,
    WebhookDelivery.status,
    WebhookDelivery.attempts,
    WebhookDelivery.created_at,
    WebhookDelivery.delivered_at,
    WebhookDelivery.next_attempt_at,
)


@dataclass(frozen=True, slots=True)
class DeliveryView:
    """One delivery and the outcome of its latest attempt (None until it is tried)."""

    id: int
    endpoint_id: int
    event: str
    status: str
    attempts: int
    created_at: datetime
    delivered_at: datetime | None
    next_attempt_at: datetime
    last_attempt_at: datetime | None = None
    status_code: int | None = None
    error: str | None = None
    duration_ms: int | None = None


@dataclass(frozen=True, slots=True)
class EndpointView:
    id: int
    url: str
    events: list[str]
    created_at: datetime
    failing_since: datetime | None
    pending: int
    # Its newest delivery that has been tried, with that try's outcome.
    last_delivery: DeliveryView | None = None


@dataclass(frozen=True, slots=True)
class AttemptView:
    delivery_id: int
    event: str
    attempted_at: datetime
    status_code: int | None
    error: str | None
    duration_ms: int
    delivery_status: str


@dataclass(frozen=True, slots=True)
class Outcome:
    status_code: int | None
    error: str | None
    duration_ms: int

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def body_of(event: str, data: dict[str, Any], timestamp: datetime) -> str:
    return orjson.dumps({"event": event, "data": data, "timestamp": iso_millis(timestamp)}).decode()


class Webhooks:
    def __init__(self, database: Database, sealer: Sealer, settings: WebhookSettings) -> None:
        self.database = database
        self._sealer = sealer
        self.settings = settings
        self._client: httpx.AsyncClient | None = None
        self._give_up_after = timedelta(seconds=settings.give_up_after_seconds)

    # ---- operator actions -------------------------------------------------

    async def add(self, url: str, events: list[str], actor: Actor) -> tuple[int, str]:
        """A new endpoint and its signing secret (shown once, stored sealed), in a unit of
        work of its own: the URL's host is looked up first, outside any transaction."""
        if not URL.fullmatch(url) or len(url) > 2000:
            raise Invalid(f"{url!r} is not an http:// or https:// URL", field="url")
        unknown = [name for name in events if name != "*" and name not in EVENTS]
        if not events or unknown:
            raise Invalid(
                f"unknown event {unknown[0]!r}; events are * or one of {', '.join(EVENTS)}"
                if unknown
                else "name at least one --event",
                field="event",
            )
        if not self.settings.allow_private_targets:
            try:
                await targets.check_url(url, self.settings.timeout_seconds)
            except targets.TargetRefused as exc:
                raise Invalid(str(exc), field="url") from None
        secret = "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
        async with self.database.unit_of_work() as session:
            endpoint = WebhookEndpoint(
                url=url,
                events=sorted(set(events)),
                secret=self._sealer.seal(secret.encode()),
                # Events from before the endpoint existed are not its to receive.
                since_event_id=await session.scalar(select(func.max(OutboxEvent.id))) or 0,
            )
            session.add(endpoint)
            await session.flush()
            await audit.record(
                session,
                actor,
                "webhook.added",
                f"{actor.name} added webhook #{endpoint.id} to {url} "
                f"for {', '.join(endpoint.events)}",
                target=f"webhook:{endpoint.id}",
            )
            return endpoint.id, secret

    async def endpoints(
        self, session: AsyncSession, *, limit: int | None = None, offset: int = 0
    ) -> list[EndpointView]:
        """Endpoints in the order they were added (``limit`` of them from ``offset``),
        each with its pending count and its newest tried delivery."""
        pending = (
            select(WebhookDelivery.endpoint_id, func.count().label("pending"))
            .where(WebhookDelivery.status == "pending")
            .group_by(WebhookDelivery.endpoint_id)
            .subquery()
        )
        last_tried = (
            select(WebhookDelivery.id)
            .where(WebhookDelivery.endpoint_id == WebhookEndpoint.id, WebhookDelivery.attempts > 0)
            .order_by(WebhookDelivery.id.desc())
            .limit(1)
            .correlate(WebhookEndpoint)
            .scalar_subquery()
        )
        rows = (
            await session.execute(
                select(WebhookEndpoint, func.coalesce(pending.c.pending, 0), last_tried)
                .outerjoin(pending, pending.c.endpoint_id == WebhookEndpoint.id)
                .order_by(WebhookEndpoint.id)
                .limit(limit)
                .offset(offset)
            )
        ).all()
        tried = [delivery_id for _e, _count, delivery_id in rows if delivery_id is not None]
        last = {
            view.id: view
            for view in await self._delivery_views(
                session, select(*_DELIVERY_COLUMNS).where(WebhookDelivery.id.in_(tried))
            )
        }
        return [
            EndpointView(
                e.id,
                e.url,
                list(e.events),
                e.created_at,
                e.failing_since,
                count,
                last.get(delivery_id) if delivery_id is not None else None,
            )
            for e, count, delivery_id in rows
        ]

    async def deliveries(
        self,
        session: AsyncSession,
        *,
        endpoint_id: int | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> list[DeliveryView]:
        """Deliveries newest first (of one endpoint, or of all), each with the outcome of
        its latest attempt: ``limit`` of them from ``offset``."""
        query = select(*_DELIVERY_COLUMNS)
        if endpoint_id is not None:
            await self._endpoint(session, endpoint_id)
            query = query.where(WebhookDelivery.endpoint_id == endpoint_id)
        return await self._delivery_views(
            session, query.order_by(WebhookDelivery.id.desc()).limit(limit).offset(offset)
        )

    @staticmethod
    async def _delivery_views(
        session: AsyncSession, query: Select[*tuple[Any, ...]]
    ) -> list[DeliveryView]:
        """The deliveries ``query`` selects (``_DELIVERY_COLUMNS``), each with its latest
        attempt, found through the attempts' ``(delivery_id, id)`` index."""
        rows = (await session.execute(query)).all()
        if not rows:
            return []
        latest = (
            select(func.max(WebhookAttempt.id))
            .where(WebhookAttempt.delivery_id.in_([row.id for row in rows]))
            .group_by(WebhookAttempt.delivery_id)
        )
        attempts = {
            attempt.delivery_id: attempt
            for attempt in await session.scalars(
                select(WebhookAttempt).where(WebhookAttempt.id.in_(latest))
            )
        }
        views = []
        for row in rows:
            view = DeliveryView(
                id=row.id,
                endpoint_id=row.endpoint_id,
                event=row.event,
                status=row.status,
                attempts=row.attempts,
                created_at=row.created_at,
                delivered_at=row.delivered_at,
                next_attempt_at=row.next_attempt_at,
            )
            if (attempt := attempts.get(row.id)) is not None:
                view = replace(
                    view,
                    last_attempt_at=attempt.attempted_at,
                    status_code=attempt.status_code,
                    error=attempt.error,
                    duration_ms=attempt.duration_ms,
                )
            views.append(view)
        return views

    async def remove(self, session: AsyncSession, endpoint_id: int, actor: Actor) -> str:
        endpoint = await self._endpoint(session, endpoint_id)
        await session.delete(endpoint)
        await session.flush()
        await audit.record(
            session,
            actor,
            "webhook.removed",
            f"{actor.name} removed webhook #{endpoint_id} ({endpoint.url})",
            target=f"webhook:{endpoint_id}",
        )
        return endpoint.url

    async def attempts(
        self, session: AsyncSession, endpoint_id: int, limit: int = 20
    ) -> list[AttemptView]:
        await self._endpoint(session, endpoint_id)
        rows = await session.execute(
            select(WebhookAttempt, WebhookDelivery.event, WebhookDelivery.status)
            .join(WebhookDelivery, WebhookDelivery.id == WebhookAttempt.delivery_id)
            .where(WebhookDelivery.endpoint_id == endpoint_id)
            .order_by(WebhookAttempt.id.desc())
            .limit(limit)
        )
        return [
            AttemptView(
                a.delivery_id, event, a.attempted_at, a.status_code, a.error, a.duration_ms, status
            )
            for a, event, status in rows
        ]

    async def send_test(self, endpoint_id: int) -> Outcome:
        """Queue a ``webhook.test`` event for one endpoint and attempt it now."""
        async with self.database.unit_of_work() as session:
            endpoint = await self._endpoint(session, endpoint_id)
            now = utcnow()
            delivery = WebhookDelivery(
                endpoint_id=endpoint.id,
                message_id=f"msg_test_{secrets.token_hex(8)}",
                event="webhook.test",
                body=body_of("webhook.test", {"endpoint": endpoint.id}, now),
                status="pending",
                attempts=0,
                next_attempt_at=now,
                leased_until=now + self._lease(),
                created_at=now,
            )
            session.add(delivery)
            await session.flush()
            claim = (
                delivery.id,
                endpoint.url,
                self._secret(endpoint),
                delivery.message_id,
                delivery.body,
            )
        return await self._attempt(*claim)

    async def _endpoint(self, session: AsyncSession, endpoint_id: int) -> WebhookEndpoint:
        endpoint = await session.get(WebhookEndpoint, endpoint_id)
        if endpoint is None:
            raise NotFound(f"webhook #{endpoint_id} does not exist", code="webhook_not_found")
        return endpoint

    def _secret(self, endpoint: WebhookEndpoint) -> str:
        return self._sealer.open(endpoint.secret).decode()

    def _lease(self) -> timedelta:
        return timedelta(seconds=self.settings.timeout_seconds) + LEASE_MARGIN

    # ---- the worker -------------------------------------------------------

    async def run_once(self) -> int:
        """Fan out new events, then deliver what is due; how many attempts were made."""
        async with self.database.unit_of_work(write=False) as session:
            if await session.scalar(select(func.count()).select_from(WebhookEndpoint)) == 0:
                return 0
        await self.dispatch()
        made = 0
        while attempts := await self.deliver_due():
            made += attempts
        return made

    async def dispatch(self) -> int:
        """One delivery per subscribed endpoint for each new outbox event.

        The rows are locked without skipping: a second process waits for the
        first to commit and then finds them dispatched, so deliveries are
        created (and numbered) in event order whatever the number of processes.
        """
        async with self.database.unit_of_work() as session:
            events = list(
                await session.scalars(
                    select(OutboxEvent)
                    .where(OutboxEvent.dispatched_at.is_(None))
                    .order_by(OutboxEvent.id)
                    .limit(DISPATCH_BATCH)
                    .with_for_update()
                )
            )
            if not events:
                return 0
            endpoints = list(await session.scalars(select(WebhookEndpoint)))
            now = utcnow()
            for event in events:
                for endpoint in endpoints:
                    wanted = "*" in endpoint.events or event.event in endpoint.events
                    if wanted and event.id > endpoint.since_event_id:
                        session.add(
                            WebhookDelivery(
                                endpoint_id=endpoint.id,
                                message_id=f"msg_{event.id}",
                                event=event.event,
                                body=body_of(event.event, event.payload, event.created_at),
                                status="pending",
                                attempts=0,
                                next_attempt_at=now,
                                created_at=now,
                            )
                        )
                event.dispatched_at = now
            await session.flush()
            return len(events)

    async def deliver_due(self) -> int:
        """Attempt the oldest pending delivery of each endpoint, if it is due."""
        now = utcnow()
        claims = []
        async with self.database.unit_of_work() as session:
            heads = (
                select(func.min(WebhookDelivery.id))
                .where(WebhookDelivery.status == "pending")
                .group_by(WebhookDelivery.endpoint_id)
            )
            due = await session.execute(
                select(WebhookDelivery, WebhookEndpoint)
                .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
                .where(
                    WebhookDelivery.id.in_(heads),
                    WebhookDelivery.next_attempt_at <= now,
                    (WebhookDelivery.leased_until.is_(None)) | (WebhookDelivery.leased_until < now),
                )
            )
            for delivery, endpoint in due.all():
                leased = await session.execute(
                    update(WebhookDelivery)
                    .where(
                        WebhookDelivery.id == delivery.id,
                        (WebhookDelivery.leased_until.is_(None))
                        | (WebhookDelivery.leased_until < now),
                    )
                    .values(leased_until=now + self._lease())
                    .execution_options(synchronize_session=False)
                )
                if rowcount(leased):
                    claims.append(
                        (
                            delivery.id,
                            endpoint.url,
                            self._secret(endpoint),
                            delivery.message_id,
                            delivery.body,
                        )
                    )
        await asyncio.gather(*(self._attempt(*claim) for claim in claims))
        return len(claims)

    async def _attempt(
        self, delivery_id: int, url: str, secret: str, message_id: str, body: str
    ) -> Outcome:
        outcome = await self._post(url, secret, message_id, body)
        await self._record(delivery_id, outcome)
        return outcome

    async def _post(self, url: str, secret: str, message_id: str, body: str) -> Outcome:
        sent_at = utcnow()
        headers = {
            "content-type": "application/json",
            "user-agent": "Guildhall-Webhooks/1",
            "webhook-id": message_id,
            "webhook-timestamp": str(int(sent_at.timestamp())),
            "webhook-signature": Webhook(secret).sign(message_id, sent_at, body),
        }
        started = time.perf_counter()
        try:
            response = await self.client.post(url, content=body, headers=headers)
        except httpx.TimeoutException:
            return Outcome(None, "timed out", self._ms(started))
        except httpx.HTTPError as exc:
            return Outcome(None, (str(exc) or type(exc).__name__)[:500], self._ms(started))
        return Outcome(response.status_code, None, self._ms(started))

    @staticmethod
    def _ms(started: float) -> int:
        return int((time.perf_counter() - started) * 1000)

    def _retry_delay(self, attempts: int) -> timedelta:
        base = self.settings.retry_base_seconds * 2 ** (attempts - 1)
        capped = min(base, self.settings.retry_max_seconds)
        return timedelta(seconds=capped * random.uniform(0.8, 1.2))

    async def _record(self, delivery_id: int, outcome: Outcome) -> None:
        now = utcnow()
        async with self.database.unit_of_work() as session:
            delivery = await session.get(WebhookDelivery, delivery_id, with_for_update=True)
            if delivery is None:  # its endpoint was removed meanwhile
                return
            session.add(
                WebhookAttempt(
                    delivery_id=delivery_id,
                    attempted_at=now,
                    status_code=outcome.status_code,
                    error=outcome.error,
                    duration_ms=outcome.duration_ms,
                )
            )
            delivery.attempts += 1
            delivery.leased_until = None
            endpoint = await session.get(WebhookEndpoint, delivery.endpoint_id)
            if outcome.ok:
                delivery.status, delivery.delivered_at = "delivered", now
                if endpoint is not None:
                    endpoint.failing_since = None
            elif now - delivery.created_at >= timedelta(
                seconds=self.settings.give_up_after_seconds
            ):
                delivery.status = "failed"
                if endpoint is not None and endpoint.failing_since is None:
                    endpoint.failing_since = now
            else:
                delivery.next_attempt_at = now + self._retry_delay(delivery.attempts)
            await session.flush()

    @property
    def client(self) -> httpx.AsyncClient:
        """The delivery client: no redirects, no proxy from the environment (it would
        connect for us, unchecked), and public targets only unless allowed."""
        if self._client is None:
            transport = (
                httpx.AsyncHTTPTransport()
                if self.settings.allow_private_targets
                else targets.GuardedTransport()
            )
            self._client = httpx.AsyncClient(
                timeout=self.settings.timeout_seconds,
                follow_redirects=False,
                trust_env=False,
                transport=transport,
            )
        return self._client

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None
