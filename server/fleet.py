"""Fleet: the objects one running Bootfleet shares between HTTP, TFTP and the CLI."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy.engine import Engine

from server.booter import Booter
from server.catalog import Catalog
from server.checks import Checks
from server.config import Settings
from server.netinfo import advertised_address, url_host
from server.registry.database import make_engine
from server.registry.installs import Policy
from server.registry.migrations import migrate
from server.render import Renderer
from server.retention import Limits, Retention
from server.tokens import load_site_key
from server.wol import Waker, interface_with, local_subnets


@dataclass
class Fleet:
    settings: Settings
    engine: Engine
    catalog: Catalog
    renderer: Renderer
    booter: Booter
    policy: Policy
    checks: Checks  # what a profile assignment must pass (the registry runs them)
    retention: Retention  # applied by the reaper; its counters join /metrics
    waker: Waker = field(default_factory=Waker)  # Wake-on-LAN through the right interface
    # Extra Prometheus text for /metrics (the TFTP service adds its counters here).
    metrics_sources: list[Callable[[], str]] = field(default_factory=list)

    @property
    def server_url(self) -> str:
        return self.renderer.server_url

    def close(self) -> None:
        """Write what is still queued (client sightings) and close the database pool."""
        self.booter.registry.close()
        self.engine.dispose()

    @classmethod
    def open(cls, settings: Settings, *, engine: Engine | None = None) -> Fleet:
        """Open (and migrate) the registry and build the boot policy objects."""
        engine = engine or make_engine(settings.db_url, settings.db_busy_timeout)
        migrate(engine)
        address = advertised_address(settings.bind, settings.interface, settings.advertise)
        server_url = f"http://{url_host(address)}:{settings.http_port}"
        policy = Policy(
            site_key=load_site_key(settings.data_dir),
            boot_timeout=settings.boot_timeout,
            progress_timeout=settings.progress_timeout,
            grace_seconds=settings.grace_seconds,
        )
        renderer = Renderer(settings.templates_dir, server_url)
        catalog = Catalog(settings.templates_dir)
        booter = Booter(engine, policy, renderer)
        limits = Limits(settings.discovered_max, settings.events_per_mac, settings.event_days)
        retention = Retention(engine, limits)
        return cls(
            settings=settings,
            engine=engine,
            catalog=catalog,
            renderer=renderer,
            booter=booter,
            policy=policy,
            checks=Checks(catalog, booter),
            retention=retention,
            waker=Waker(settings.interface or interface_with(address, local_subnets())),
            metrics_sources=[retention.render_prometheus],
        )
