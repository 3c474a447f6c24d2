"""The real app in the test process: a migrated database, the folder broker and an artifact
folder under a tmp folder, its lifespan entered, and sync clients over httpx's ASGITransport.

The app runs on an event loop in a thread of its own (anyio's blocking portal, as
starlette's TestClient does) for the whole test session, so its lifespan (read pool,
warm-up) runs once, and a test calls ``api.get(...)`` as on a real deployment's client.
Nothing consumes the broker's queue: a submitted job stays queued until it is cancelled.
"""
import sys
from collections.abc import Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from pathlib import Path
from uuid import uuid4

import httpx
import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal

from app.auth.service import create_key
from app.config import get_settings
from app.db import get_session_factory
from app.main import create_app
from app.migrate import upgrade

BASE_URL = "http://trainyard.test"


def forget_cached_settings() -> None:
    """Closes the cached engine and clears every cache built from the environment.

    Every ``functools.lru_cache`` of a loaded app/worker module (settings, engines, session
    factory, Celery app, hub, limiters, ...), found by walking the modules, so a cache
    added later is cleared too; and the API's memory of keys' tenants.
    """
    db = sys.modules.get("app.db")
    if db is not None and db.get_engine.cache_info().currsize:
        db.get_engine().dispose()
    for name, module in list(sys.modules.items()):
        if module is None or not name.startswith(("app.", "worker.")):
            continue
        for value in list(vars(module).values()):
            if callable(getattr(value, "cache_clear", None)) and hasattr(value, "cache_info"):
                value.cache_clear()
    auth = sys.modules.get("app.auth.service")
    if auth is not None and isinstance(getattr(auth, "_tenants", None), dict):
        auth._tenants.clear()


class Client:
    """A sync face of an httpx.AsyncClient that runs on the portal's loop; responses come read."""

    def __init__(self, portal: BlockingPortal, client: httpx.AsyncClient):
        self._portal, self._client = portal, client

    def request(self, method: str, url: str, **kwargs) -> httpx.Response:
        return self._portal.call(lambda: self._client.request(method, url, **kwargs))

    def get(self, url: str, **kwargs) -> httpx.Response:
        return self.request("GET", url, **kwargs)

    def post(self, url: str, **kwargs) -> httpx.Response:
        return self.request("POST", url, **kwargs)

    def delete(self, url: str, **kwargs) -> httpx.Response:
        return self.request("DELETE", url, **kwargs)

    def close(self) -> None:
        self._portal.call(self._client.aclose)

    @property
    def async_client(self) -> httpx.AsyncClient:
        """The client itself, for requests sent together on the app's loop (portal_call)."""
        return self._client

    def portal_call(self, fn):
        """Runs the coroutine function ``fn`` on the app's loop; its result."""
        return self._portal.call(fn)

    def portal_start(self, coroutine) -> Future:
        """Starts ``coroutine`` on the app's loop now; a future of its result."""
        return self._portal.start_task_soon(lambda: coroutine)


class Deployment:
    """One in-process deployment: its database URL, its data folder, clients by key."""

    def __init__(self, name: str, database_url: str, data_dir: Path, portal: BlockingPortal, app):
        self.name, self.database_url, self.data_dir = name, database_url, data_dir
        self._portal, self._transport = portal, httpx.ASGITransport(app=app)

    @contextmanager
    def client(self, key: str | None) -> Iterator[Client]:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        client = Client(self._portal, httpx.AsyncClient(transport=self._transport, base_url=BASE_URL,
                                                        headers=headers, timeout=30))
        try:
            yield client
        finally:
            client.close()

    def new_key(self, tenant: str | None = None) -> str:
        """A key for a new tenant (or ``tenant``), made as `trainyard keys create` makes it."""
        with get_session_factory()() as session:
            created = create_key(db_session=session, name=f"key-{uuid4().hex[:6]}",
                                 tenant_name=tenant or f"tenant-{uuid4().hex[:10]}")
            session.commit()
        return created.key


@contextmanager
def deployment(name: str, tmp: Path, env: dict[str, str]) -> Iterator[Deployment]:
    """Sets the environment, migrates the database, runs the app's lifespan; undoes it all after."""
    with pytest.MonkeyPatch.context() as patch:
        for key, value in env.items():
            patch.setenv(key, value)
        forget_cached_settings()
        settings = get_settings()
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        upgrade(settings.resolved_database_url)
        app = create_app()
        try:
            with start_blocking_portal() as portal:
                with portal.wrap_async_context_manager(app.router.lifespan_context(app)):
                    yield Deployment(name, settings.resolved_database_url, settings.data_dir, portal, app)
        finally:
            forget_cached_settings()


def environment(tmp: Path, database_url: str, limits: dict[str, str]) -> dict[str, str]:
    """What a deployment reads: its own data, artifact and broker folders, and ``database_url``."""
    return {**limits, "DATA_DIR": str(tmp / "data"), "DATABASE_URL": database_url, "BROKER_URL": "",
            "ARTIFACT_DIR": str(tmp / "artifacts"), "QUEUE_NAME": f"trainyard-api-{uuid4().hex[:8]}"}
