"""Answers cached in Redis under a key made of the report, its normalised parameters and the warehouse
version. Every load that adds rows bumps the version in its own transaction, so the first request after
a load misses and computes from the new data: a cached answer can be old only in the sense of "the same
warehouse state". The TTL only bounds memory. If Redis is down, answers are computed, not refused."""
from __future__ import annotations

import hashlib
import json
import logging

import redis
from sqlalchemy import text
from sqlalchemy.orm import Session

log = logging.getLogger(__name__)
PREFIX = "cafeflow:reporting:"


def warehouse_version(session: Session) -> int:
    return int(session.execute(text("SELECT version FROM warehouse.version")).scalar() or 0)


def cache_key(report: str, version: int, parts: list) -> str:
    normalised = json.dumps([report, parts], sort_keys=True, separators=(",", ":"), default=str)
    return f"{PREFIX}v{version}:{hashlib.sha256(normalised.encode()).hexdigest()}"


class ReportCache:
    def __init__(self, url: str, ttl_seconds: int) -> None:
        self.client = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)
        self.ttl = ttl_seconds

    def get(self, key: str) -> bytes | None:
        if not self.ttl:
            return None
        try:
            return self.client.get(key)
        except redis.RedisError as exc:
            log.warning("report cache unavailable", extra={"error": type(exc).__name__})
            return None

    def put(self, key: str, body: bytes) -> None:
        if not self.ttl:
            return
        try:
            self.client.set(key, body, ex=self.ttl)
        except redis.RedisError as exc:
            log.warning("report cache unavailable", extra={"error": type(exc).__name__})
