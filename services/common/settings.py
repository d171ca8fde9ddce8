"""Typed settings, read once from the environment (and an optional `.env` file for local runs)."""
from __future__ import annotations

import re
from functools import lru_cache
from typing import Literal
from urllib.parse import urlsplit

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

MiB = 1024 * 1024
_PLACEHOLDERS = {"changeme", "change-me", "change_me", "secret", "password", "dev", "test", "xxx"}


def _env(*names: str) -> AliasChoices:
    return AliasChoices(*names)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", populate_by_name=True)

    env: Literal["development", "test", "production"] = Field(
        "production", validation_alias=_env("CAFEFLOW_ENV"))
    database_url: str = Field(
        "postgresql+psycopg2://postgres@127.0.0.1:5432/cafeflow", validation_alias=_env("DATABASE_URL"))
    redis_url: str = Field("redis://127.0.0.1:6379/0", validation_alias=_env("REDIS_URL"))
    # No defaults: production must be given real secrets (validated below).
    secret_key: SecretStr = Field(validation_alias=_env("CAFEFLOW_SECRET_KEY"))
    admin_token: SecretStr = Field(validation_alias=_env("CAFEFLOW_ADMIN_TOKEN"))

    log_level: str = Field("INFO", validation_alias=_env("LOG_LEVEL"))
    upload_max_bytes: int = Field(256 * MiB, gt=0, validation_alias=_env("UPLOAD_MAX_BYTES"))
    raw_retention_days: float = Field(7.0, ge=0, validation_alias=_env("RAW_RETENTION_DAYS"))
    # A worker loading an upload holds a lease on it and renews it every quarter of this; beat's sweeper re-queues
    # an upload whose lease ran out (its worker died) on its next pass (services/transform/sweeper.py).
    upload_lease_seconds: float = Field(20.0, ge=1, validation_alias=_env("UPLOAD_LEASE_SECONDS"))
    # How often beat runs the sweepers (uploads whose worker died or whose queue message was lost; live orders
    # whose hand-off was lost). A pass is a few indexed queries: recovery waits for it, so keep it short.
    sweep_interval_seconds: float = Field(10.0, gt=0, validation_alias=_env("SWEEP_INTERVAL_SECONDS"))
    task_soft_time_limit: int = Field(1800, gt=0, validation_alias=_env("TASK_SOFT_TIME_LIMIT"))
    task_time_limit: int = Field(1900, gt=0, validation_alias=_env("TASK_TIME_LIMIT"))
    max_load_attempts: int = Field(10, ge=1, validation_alias=_env("MAX_LOAD_ATTEMPTS"))
    parse_chunk_rows: int = Field(20_000, gt=0, validation_alias=_env("PARSE_CHUNK_ROWS"))
    # CSV till lines parsed a block at a time with pandas (services/transform/csv_vectorised.py); false parses
    # every line row by row (the same rows, slower: kept for comparison and as a way out).
    vectorised_parse: bool = Field(True, validation_alias=_env("VECTORISED_PARSE"))
    # A worker that claims a small upload also claims other queued small ones and loads up to this many
    # uploads in one transaction (per-upload counts and statuses); 1 loads every upload alone.
    load_batch_uploads: int = Field(32, ge=1, validation_alias=_env("LOAD_BATCH_UPLOADS"))
    load_batch_file_bytes: int = Field(1 * MiB, ge=0, validation_alias=_env("LOAD_BATCH_FILE_BYTES"))
    transform_queue: str = Field("transform", validation_alias=_env("TRANSFORM_QUEUE"))
    worker_metrics_port: int = Field(9808, ge=0, validation_alias=_env("WORKER_METRICS_PORT"))
    # The worker's /healthz fails when its consumer loop has not ticked for this long while Redis answers.
    worker_stall_seconds: float = Field(90.0, gt=0, validation_alias=_env("WORKER_STALL_SECONDS"))
    # ... and beat's, when its scheduler has not passed over the schedule for this long.
    beat_stall_seconds: float = Field(90.0, gt=0, validation_alias=_env("BEAT_STALL_SECONDS"))
    # Beat's /healthz, /readyz and /metrics (with the live queue length); 0 turns it off.
    beat_metrics_port: int = Field(9809, ge=0, validation_alias=_env("BEAT_METRICS_PORT"))
    # Address the worker's and beat's probe and metrics server listens on. In a container every interface
    # (Prometheus and the kubelet reach it from outside); `cafeflow up` sets its own --host (loopback).
    metrics_host: str = Field("0.0.0.0", validation_alias=_env("METRICS_HOST"))
    # Reverse proxies in front of the web services (the Kubernetes ingress: 1). Only then is the client
    # address taken from X-Forwarded-For; trusting it without a proxy would let anyone pick their address.
    trusted_proxies: int = Field(0, ge=0, le=5, validation_alias=_env("TRUSTED_PROXIES"))
    # Longest statement a web request may run (reporting sets its own, REPORTING_STATEMENT_TIMEOUT_MS).
    web_statement_timeout_ms: int = Field(30_000, gt=0, validation_alias=_env("WEB_STATEMENT_TIMEOUT_MS"))
    # Every JSON request body of every service (services/common/json_limits.py): larger is 413, deeper is 400.
    json_max_bytes: int = Field(1 * MiB, gt=0, validation_alias=_env("JSON_MAX_BYTES"))
    json_max_depth: int = Field(32, ge=1, le=200, validation_alias=_env("JSON_MAX_DEPTH"))
    # Lifetime of a signed user token (services.common.auth), verified by every service, and of a browser's
    # sign-in session (services/common/sessions.py).
    user_token_ttl_seconds: int = Field(8 * 3600, gt=0, validation_alias=_env("USER_TOKEN_TTL_SECONDS"))

    # --- one sign-in for every page (services/common/signin.py) ---
    # Where a browser reaches each service (scheme://host[:port], no path). The sign-in page is orders'
    # (<CAFEFLOW_ORDERS_URL>/signin); after signing in a browser is sent back only to one of these three, so
    # `?next=` cannot send anyone elsewhere. Behind one proxy or ingress host all three are that host.
    ingest_public_url: str = Field("http://127.0.0.1:8001", validation_alias=_env("CAFEFLOW_INGEST_URL"))
    orders_public_url: str = Field("http://127.0.0.1:8002", validation_alias=_env("CAFEFLOW_ORDERS_URL"))
    reporting_public_url: str = Field("http://127.0.0.1:8003", validation_alias=_env("CAFEFLOW_REPORTING_URL"))
    # Unset: the sign-in cookie belongs to the host that set it, and browsers send it to every port of that
    # host (8001-8003 share it). Set (e.g. "cafeflow.example.com") when the services live on sub-domains of it.
    session_cookie_domain: str | None = Field(None, validation_alias=_env("SESSION_COOKIE_DOMAIN"))

    # --- orders service ---
    # Login attempts per window, per client address and per account, before POST /v1/auth/token answers 429
    # (services/orders/throttle.py; a successful login gives its attempt back).
    login_max_failures: int = Field(5, ge=1, validation_alias=_env("LOGIN_MAX_FAILURES"))
    login_failure_window_seconds: int = Field(300, ge=1, validation_alias=_env("LOGIN_FAILURE_WINDOW_SECONDS"))
    # A delivered order's warehouse hand-off not loaded after this is sent again by beat's sweeper.
    live_order_resend_seconds: int = Field(60, ge=1, validation_alias=_env("LIVE_ORDER_RESEND_SECONDS"))
    # An order's customer name, address and phone are erased this long after its last change (finished or
    # abandoned open).
    orders_customer_retention_days: float = Field(30.0, gt=0, validation_alias=_env("ORDERS_CUSTOMER_RETENTION_DAYS"))

    # --- reporting service ---
    # Longest from..to a report or export may span (a larger range is a 422, not a slow scan).
    reporting_max_range_days: int = Field(1100, gt=0, validation_alias=_env("REPORTING_MAX_RANGE_DAYS"))
    # Cached answers are keyed by the warehouse version too, so this only bounds memory, never staleness.
    reporting_cache_ttl_seconds: int = Field(3600, ge=0, validation_alias=_env("REPORTING_CACHE_TTL_SECONDS"))
    reporting_statement_timeout_ms: int = Field(30_000, gt=0, validation_alias=_env("REPORTING_STATEMENT_TIMEOUT_MS"))
    # The database role every reporting query runs as (created by warehouse migration 0002).
    reporting_db_role: str = Field("cafeflow_reporting", pattern=r"^[a-z_][a-z0-9_]{0,62}$",
                                   validation_alias=_env("REPORTING_DB_ROLE"))


    @field_validator("database_url")
    @classmethod
    def _psycopg2_driver(cls, url: str) -> str:
        if url.startswith("postgres://"):
            url = "postgresql://" + url[len("postgres://"):]
        if url.startswith("postgresql://"):
            url = "postgresql+psycopg2://" + url[len("postgresql://"):]
        return url

    @field_validator("ingest_public_url", "orders_public_url", "reporting_public_url")
    @classmethod
    def _origin_only(cls, url: str) -> str:
        parts = urlsplit(url.strip().rstrip("/"))
        if parts.scheme not in ("http", "https") or not parts.hostname or "@" in parts.netloc \
                or parts.path or parts.query or parts.fragment:
            raise ValueError(f"{url!r} must be scheme://host[:port] (http or https, no path)")
        return f"{parts.scheme}://{parts.netloc.lower()}"

    @field_validator("session_cookie_domain")
    @classmethod
    def _bare_domain(cls, domain: str | None) -> str | None:
        domain = (domain or "").strip().lstrip(".").lower() or None
        if domain is not None and not re.fullmatch(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+",
                                                   domain):
            raise ValueError(f"SESSION_COOKIE_DOMAIN {domain!r} must be a domain name such as cafeflow.example.com")
        return domain

    @model_validator(mode="after")
    def _real_secrets_outside_development(self) -> "Settings":
        # In every environment, development too: a hard limit at or below the soft one kills a task before it
        # can record why it stopped.
        if self.task_time_limit <= self.task_soft_time_limit:
            raise ValueError("TASK_TIME_LIMIT must be above TASK_SOFT_TIME_LIMIT")
        if self.env == "development":
            return self
        for name, value in (("CAFEFLOW_SECRET_KEY", self.secret_key), ("CAFEFLOW_ADMIN_TOKEN", self.admin_token)):
            raw = value.get_secret_value()
            if raw.strip().lower() in _PLACEHOLDERS or len(raw) < 32:
                raise ValueError(f"{name} must be a random value of at least 32 characters outside development")
        return self

    @property
    def visibility_timeout(self) -> int:
        """Redis redelivers an unacked task after this; it must exceed the longest task."""
        return self.task_time_limit * 2

    @property
    def signin_url(self) -> str:
        """The one sign-in page, orders' (it owns the users and their password hashes)."""
        return f"{self.orders_public_url}/signin"

    @property
    def public_urls(self) -> dict[str, str]:
        return {"ingest": self.ingest_public_url, "orders": self.orders_public_url,
                "reporting": self.reporting_public_url}

    @property
    def psycopg2_dsn(self) -> str:
        return self.database_url.replace("postgresql+psycopg2://", "postgresql://", 1)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()  # type: ignore[call-arg]
