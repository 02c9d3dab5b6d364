"""Demo traffic for the inventory API: ``python -m app.traffic --url http://127.0.0.1:8000``.

Creates a few warehouses and SKUs if they are missing, stocks them, then sends a steady mix at
``--rate`` requests per second: stock reads (most of it), receives and shipments through the
stream, reservations that are confirmed or released, list queries, and a few invalid requests
(so the dashboards show some 4xx). Runs for ``--duration`` seconds (0: until Ctrl-C / SIGTERM).

With an issuer (``--issuer`` or ``INVENTORY_AUTH_ISSUER``) it authenticates like any client of the
API: OAuth2 client credentials (``--client-id``, default ``inventory-traffic``, and its secret from
``--client-secret-file`` / ``INVENTORY_AUTH_CLIENT_SECRET_FILE`` /
``INVENTORY_AUTH_CLIENT_SECRET``), the token cached and renewed before it expires. Without an
issuer it sends no token.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import random
import signal
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field

import httpx
from pydantic import ValidationError

from app.core.client_auth import ClientAuthSettings, ClientCredentials

log = logging.getLogger("app.traffic")

WAREHOUSES = ("W-NORTH", "W-SOUTH", "W-EAST")


@dataclass
class Mix:
    """Relative weights of the operations."""

    read: int = 70
    receive: int = 8
    ship: int = 8
    reserve: int = 8
    list: int = 4
    invalid: int = 2

    def choose(self, rng: random.Random) -> str:
        names = ["read", "receive", "ship", "reserve", "list", "invalid"]
        weights = [self.read, self.receive, self.ship, self.reserve, self.list, self.invalid]
        return rng.choices(names, weights)[0]


@dataclass
class Stats:
    statuses: Counter[int] = field(default_factory=Counter)
    errors: int = 0
    started: float = field(default_factory=time.monotonic)

    def line(self) -> str:
        elapsed = max(time.monotonic() - self.started, 1e-9)
        total = sum(self.statuses.values())
        codes = " ".join(f"{code}:{n}" for code, n in sorted(self.statuses.items()))
        return f"{total / elapsed:.0f} req/s, {codes}, connection errors {self.errors}"


class Traffic:
    def __init__(
        self, *, client: httpx.AsyncClient, skus: list[str], mix: Mix, rng: random.Random
    ) -> None:
        self.client = client
        self.skus = skus
        self.mix = mix
        self.rng = rng
        self.stats = Stats()

    async def seed(self, *, initial_stock: int) -> None:
        for code in WAREHOUSES:
            await self.client.post("/api/v1/warehouses", json={"code": code, "name": code})
        for sku in self.skus:
            created = await self.client.post(
                "/api/v1/items", json={"sku": sku, "name": f"Demo item {sku}"}
            )
            if created.status_code == 201:
                for code in WAREHOUSES:
                    await self._movement("receive", sku=sku, warehouse=code, qty=initial_stock)

    async def _movement(self, kind: str, *, sku: str, warehouse: str, qty: int) -> httpx.Response:
        return await self.client.post(
            "/api/v1/movements",
            json={"kind": kind, "sku": sku, "warehouse": warehouse, "quantity": qty},
            headers={"Idempotency-Key": uuid.uuid4().hex},
        )

    async def one(self) -> None:
        sku = self.rng.choice(self.skus)
        warehouse = self.rng.choice(WAREHOUSES)
        op = self.mix.choose(self.rng)
        try:
            if op == "read":
                response = await self.client.get(f"/api/v1/stock/{sku}")
            elif op == "receive":
                response = await self._movement(
                    "receive", sku=sku, warehouse=warehouse, qty=self.rng.randint(1, 20)
                )
            elif op == "ship":
                response = await self._movement(
                    "ship", sku=sku, warehouse=warehouse, qty=self.rng.randint(1, 10)
                )
            elif op == "reserve":
                response = await self.client.post(
                    "/api/v1/reservations",
                    json={
                        "sku": sku,
                        "warehouse": warehouse,
                        "quantity": self.rng.randint(1, 5),
                        "ttl_seconds": 120,
                    },
                )
                if response.status_code == 201:
                    verb = "confirm" if self.rng.random() < 0.7 else "release"
                    reservation = response.json()["id"]
                    self.stats.statuses[response.status_code] += 1
                    response = await self.client.post(f"/api/v1/reservations/{reservation}/{verb}")
            elif op == "list":
                response = await self.client.get(
                    "/api/v1/stock", params={"warehouse": warehouse, "limit": 50}
                )
            else:
                response = await self.client.get("/api/v1/stock/NO-SUCH-SKU")
        except httpx.HTTPError:
            self.stats.errors += 1
            return
        self.stats.statuses[response.status_code] += 1

    async def run(self, *, rate: float, duration: float, stop: asyncio.Event) -> None:
        interval = 1.0 / rate
        deadline = time.monotonic() + duration if duration > 0 else float("inf")
        pending: set[asyncio.Task[None]] = set()
        next_at = time.monotonic()
        next_report = time.monotonic() + 10
        while not stop.is_set() and time.monotonic() < deadline:
            if len(pending) < 200:  # bounded concurrency: a slow server is not flooded
                task = asyncio.create_task(self.one())
                pending.add(task)
                task.add_done_callback(pending.discard)
            next_at += interval
            delay = next_at - time.monotonic()
            if delay > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=delay)
            else:
                next_at = time.monotonic()
            if time.monotonic() >= next_report:
                log.info(self.stats.line())
                next_report += 10
        if pending:
            await asyncio.wait(pending, timeout=10)


async def main_async(args: argparse.Namespace) -> Stats:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    rng = random.Random(args.seed)
    skus = [f"DEMO-{i:04d}" for i in range(args.skus)]
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    auth: ClientCredentials | None = args.auth
    async with httpx.AsyncClient(
        base_url=args.url, timeout=10.0, limits=limits, auth=auth
    ) as client:
        traffic = Traffic(client=client, skus=skus, mix=Mix(), rng=rng)
        await traffic.seed(initial_stock=args.initial_stock)
        log.info("seeded %d SKUs in %d warehouses; sending %.0f req/s", len(skus), 3, args.rate)
        await traffic.run(rate=args.rate, duration=args.duration, stop=stop)
    log.info("done: %s", traffic.stats.line())
    return traffic.stats


def add_client_auth_arguments(parser: argparse.ArgumentParser) -> None:
    """``--issuer``, ``--client-id``, ``--client-secret-file``, ``--scope`` (each defaults to its
    ``INVENTORY_AUTH_*`` variable)."""
    group = parser.add_argument_group("authentication (OAuth2 client credentials)")
    group.add_argument("--issuer", help="token issuer; default INVENTORY_AUTH_ISSUER (unset: none)")
    group.add_argument("--client-id", help="default INVENTORY_AUTH_CLIENT_ID or inventory-traffic")
    group.add_argument("--client-secret-file", help="file holding the client secret")
    group.add_argument("--scope", help="scopes to ask for (default: the client's own)")


def client_auth(
    parser: argparse.ArgumentParser, args: argparse.Namespace
) -> ClientCredentials | None:
    flags = {
        "issuer": args.issuer,
        "client_id": args.client_id,
        "client_secret_file": args.client_secret_file,
        "client_scope": args.scope,
    }
    try:
        settings = ClientAuthSettings(**{k: v for k, v in flags.items() if v is not None})
        return settings.credentials()
    except (ValidationError, ValueError) as exc:
        parser.error(str(exc))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m app.traffic", description=__doc__)
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--rate", type=float, default=50.0, help="requests per second")
    parser.add_argument("--duration", type=float, default=0.0, help="seconds; 0 = until stopped")
    parser.add_argument("--skus", type=int, default=50)
    parser.add_argument("--initial-stock", type=int, default=500)
    parser.add_argument("--seed", type=int, default=42)
    add_client_auth_arguments(parser)
    args = parser.parse_args(argv)
    if args.rate <= 0:
        parser.error("--rate must be positive")
    args.auth = client_auth(parser, args)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s traffic %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
