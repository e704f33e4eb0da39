"""The web dashboard served at `/ui`: experiments, one experiment, one task, workers."""

from fastapi import APIRouter

from server.ui import api, pages

router = APIRouter()
router.include_router(pages.router)
router.include_router(api.router)

__all__ = ["router"]
