"""create_app(): the Trainyard API."""
import asyncio
import logging
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from sqlalchemy import text

from app.datasets.router import router as datasets_router
from app.db import get_engine, get_read_engine, open_read_pool
from app.errors import install_error_handlers
from app.jobs.reads import JobReader, fetch_in_thread, fetch_on_loop
from app.jobs.router import router as jobs_router
from app.schema_router import router as schema_router
from app.queue import broker_reachable
from app.warmup import warm_up
from app.workers.router import router as workers_router


def create_app() -> FastAPI:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app = FastAPI(
        lifespan=lifespan,
        title="Trainyard",
        version="0.1.0",
        description="Training as a service: POST a network spec and a dataset, "
                    "get a trained PyTorch model back.",
    )
    install_error_handlers(app)
    app.include_router(datasets_router)
    app.include_router(jobs_router)
    app.include_router(workers_router)
    app.include_router(schema_router)

    @app.get("/healthz", tags=["health"])
    async def healthz():
        """The process is up."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"])
    def readyz():
        """The database and the broker are reachable."""
        checks = {"database": _database_ok(), "broker": broker_reachable()}
        ok = all(checks.values())
        return JSONResponse({"status": "ok" if ok else "unavailable", "checks": checks},
                            status_code=200 if ok else 503)

    return app


@asynccontextmanager
async def lifespan(app: FastAPI):
    app.state.read_pool = await open_read_pool()
    pool = app.state.read_pool
    app.state.job_reader = JobReader(fetch_in_thread(get_read_engine()) if pool is None else fetch_on_loop(pool))
    # Before the first request, whose own imports (scikit-learn's, for a builtin dataset)
    # would race the warm-up's in another thread: two threads importing the same modules
    # can deadlock, and Python then fails one of the imports. About 2 s of startup.
    await asyncio.to_thread(warm_up)
    try:
        yield
    finally:
        if app.state.read_pool is not None:
            await app.state.read_pool.close()


def _database_ok() -> bool:
    try:
        with get_engine().connect() as conn:
            conn.execute(text("SELECT 1"))
        return True
    except Exception:
        return False


app = create_app()
