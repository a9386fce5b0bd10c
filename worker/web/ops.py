"""`/healthz`, `/readyz` and `/metrics` on `ptsync web` (no authentication: expose them to
your monitoring network only, or block them at the proxy; they carry no patient data)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response

from worker.health import readiness

router = APIRouter(tags=["operations"], include_in_schema=False)


@router.get("/healthz")
def healthz() -> JSONResponse:
    return JSONResponse({"status": "ok"})


@router.get("/readyz")
async def readyz(request: Request) -> JSONResponse:
    try:
        runtime = await run_in_threadpool(request.app.state.runtime)
    except Exception as exc:  # the runtime could not be built (database down at start, bad settings)
        return JSONResponse(
            {"status": "not ready", "checks": {"runtime": exc.__class__.__name__}}, status_code=503
        )
    ready, checks = await run_in_threadpool(readiness, runtime)
    return JSONResponse(
        {"status": "ready" if ready else "not ready", "checks": checks}, status_code=200 if ready else 503
    )


@router.get("/metrics")
async def metrics(request: Request) -> Response:
    body = await run_in_threadpool(exposition, request.app.state.runtime)
    from prometheus_client import CONTENT_TYPE_LATEST

    return Response(body, media_type=CONTENT_TYPE_LATEST)


def exposition(runtime) -> bytes:
    """This process's counters and histograms, then the gauges read from the database."""
    from prometheus_client import REGISTRY, CollectorRegistry, generate_latest

    import worker.metrics  # noqa: F401  (registers the application metrics)
    from worker.ops_collector import OpsCollector

    database = CollectorRegistry(auto_describe=False)
    database.register(OpsCollector(runtime))
    return generate_latest(REGISTRY) + generate_latest(database)
