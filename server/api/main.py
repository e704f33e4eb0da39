"""One router collecting the resource routers."""

from fastapi import APIRouter

from server.api import artifacts, experiments, health, tasks, workers

api_router = APIRouter()
api_router.include_router(health.router)
api_router.include_router(experiments.router)
api_router.include_router(workers.router)
api_router.include_router(tasks.router)
api_router.include_router(artifacts.router)
