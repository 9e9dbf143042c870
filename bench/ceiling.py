"""Bare FastAPI app: the throughput ceiling the Guildhall server is measured against.

It runs on the same framework, server, event loop and HTTP parser as Guildhall but does no
auth, database or business work, so the ratio Guildhall / ceiling isolates Guildhall's own cost.
"""

from fastapi import FastAPI

app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)

_INFO: dict[str, object] = {
    "status": True,
    "version": "3.2.1-beta.1",
    "platform_codename": "Avalanche 2",
}


@app.get("/api", response_model=None)
async def api_info() -> dict[str, object]:
    """Return constant JSON shaped like Guildhall's ``GET /api``; no response model, no work."""
    return _INFO
