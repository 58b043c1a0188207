"""Viewer settings: env vars with prefix VIEWER_, overridden by command-line flags.

Credentials are the object store's usual AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (or any other source
of boto3's default chain, such as a mounted credentials file), the same ones the worker writes with.
"""

from __future__ import annotations

from typing import Optional

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class ViewerSettings(BaseSettings):
    """Everything `python -m evidence_viewer` can be told; env var = VIEWER_ + field upper-cased."""

    model_config = SettingsConfigDict(env_prefix="VIEWER_", extra="ignore", validate_default=True)

    endpoint: str = Field(..., pattern=r"^https?://[^\s/]+", description="URL of the S3-compatible evidence store, "
                          "e.g. http://127.0.0.1:8333 (the worker's WORKER_EVIDENCE_ENDPOINT).")
    bucket: str = Field(..., pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", description="Bucket the worker writes "
                        "evidence to (the worker's WORKER_EVIDENCE_BUCKET).")
    region: str = Field("us-east-1", description="Region name sent to the store (most S3-compatible servers "
                        "accept any).")
    host: str = Field("127.0.0.1", description="Address the page listens on; 0.0.0.0 in a container.")
    port: int = Field(8088, ge=1, le=65535, description="Port the page listens on.")
    per_camera: int = Field(6, ge=1, le=100, description="Defects shown per camera on the overview page.")
    page_size: int = Field(24, ge=1, le=200, description="Defects per page on one camera's page.")
    max_days: int = Field(7, ge=1, le=366, description="Look at most this many of a camera's newest capture days "
                          "(UTC day folders that hold evidence) for its defects.")
    refresh_s: int = Field(15, ge=0, le=3600, description="The page reloads itself every this many seconds "
                           "(0: never).")
    timeout_s: float = Field(5.0, gt=0, le=120, description="Give up on one request to the store after this many "
                             "seconds; the page then says the store is unreachable.")
    cache_events: int = Field(5000, ge=0, description="Event JSON objects kept in memory (by key and ETag), so a "
                              "reload reads only what is new.")
    title: Optional[str] = Field(None, description="Page title (default: 'Defects — <bucket>').")

    @model_validator(mode="after")
    def _check(self):
        self.endpoint = self.endpoint.rstrip("/")
        return self
