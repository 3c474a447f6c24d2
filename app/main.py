"""create_app(): the Trainyard API."""
import asyncio
from contextlib import asynccontextmanager

from fastapi import FastAPI

from app.auth.router import router as keys_router
from app.datasets.router import router as datasets_router
from app.errors import install_error_handlers
from app.health import router as health_router
from app.jobs.router import router as jobs_router
from app.logs import JobPathFields
from app.logs import configure as configure_logging
from app.monitoring.requests import RequestMetrics
from app.monitoring.router import router as monitoring_router
from app.openapi import install_openapi
from app.rate_limits import RateLimits
from app.request_limits import RequestLimits
from app.schema_router import router as schema_router
from app.studies.router import router as studies_router
from app.ui.docs import router as docs_router
from app.ui.headers import SecurityHeaders
from app.ui.pages import router as pages_router
from app.ui.signin import install_sign_in
from app.ui.static import install_static
from app.uploads.router import router as uploads_router
from app.warmup import warm_up
from app.webhooks.router import router as webhooks_router
from app.workers.router import router as workers_router


def create_app() -> FastAPI:
    configure_logging()  # LOG_FORMAT: text or JSON lines (app/logs.py)
    app = FastAPI(
        lifespan=lifespan,
        title="Trainyard",
        version="0.1.0",
        description="Training as a service: POST a network spec and a dataset, "
                    "get a trained PyTorch model back.",
        docs_url=None,  # app/ui/docs.py serves /docs and /redoc from vendored files, offline
        redoc_url=None,
    )
    install_error_handlers(app)
    install_openapi(app)
    app.add_middleware(RequestLimits)  # every body counted and checked before a route reads it
    app.add_middleware(RateLimits)  # outside RequestLimits: a call over the rate is refused unread
    app.add_middleware(SecurityHeaders)  # outside RequestLimits: its refusals carry them too
    app.add_middleware(JobPathFields)  # a job's requests log with its job_id
    app.add_middleware(RequestMetrics)  # outermost: every answer is counted, refusals included
    install_static(app)
    app.include_router(docs_router)
    app.include_router(datasets_router)
    app.include_router(uploads_router)
    app.include_router(jobs_router)
    app.include_router(studies_router)
    app.include_router(workers_router)
    app.include_router(keys_router)
    app.include_router(webhooks_router)
    app.include_router(schema_router)
    app.include_router(health_router)
    app.include_router(monitoring_router)
    install_sign_in(app)
    app.include_router(pages_router)
    return app


@asynccontextmanager
async def lifespan(app: FastAPI):
    # Before the first request, whose own imports (scikit-learn's, for a builtin dataset)
    # would race the warm-up's in another thread: two threads importing the same modules
    # can deadlock, and Python then fails one of the imports. About 2 s of startup.
    await asyncio.to_thread(warm_up)
    yield


app = create_app()
