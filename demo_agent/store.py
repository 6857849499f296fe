"""Redis behind the agent: a response cache and per-thread checkpoints.

Redis being slow or gone must never fail a chat: every operation here returns a result or
None, counts its outcome and logs the failure with what the user can check.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

from demo_agent import instrumentation

log = structlog.get_logger("demo_agent.store")

CACHE_TTL_S = 600
CHECKPOINT_TTL_S = 3600
BACKEND = "redis"
# Short timeouts: a Redis that hangs should cost a chat milliseconds, not seconds.
SOCKET_TIMEOUT_S = 0.5


def _decode(raw: bytes | None, key: str, valid: Callable[[Any], bool]) -> Any:
    """A stored JSON value, or None when absent, unreadable or not of the shape the agent
    writes (then it is simply rewritten): a stray value in Redis must not fail a chat."""
    if raw is None:
        return None
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError):
        # RecursionError: JSON nested deeper than the parser's stack, e.g. "[" * 200000.
        value = None
    if value is None or not valid(value):
        log.warning("redis_value_unreadable", key=key, hint="the value is replaced on next write")
        return None
    return value


CACHED_ANSWER_FIELDS = ("reply", "provider", "model")


def _is_cached_answer(value: Any) -> bool:
    """What cache_set writes: an object with the reply, provider and model as strings."""
    return isinstance(value, dict) and all(
        isinstance(value.get(name), str) for name in CACHED_ANSWER_FIELDS)


def _is_checkpoint(value: Any) -> bool:
    """What save_checkpoint writes: a list of turns, each an object."""
    return isinstance(value, list) and all(isinstance(turn, dict) for turn in value)


def connect(redis_url: str) -> Redis:
    return Redis.from_url(
        redis_url,
        socket_timeout=SOCKET_TIMEOUT_S,
        socket_connect_timeout=SOCKET_TIMEOUT_S,
        decode_responses=False,
    )


def cache_key(message: str, category: str, bypass: bool) -> str:
    normalized = " ".join(message.lower().split())
    digest = hashlib.sha256(f"{category}\n{normalized}".encode()).hexdigest()
    # The cache_bypass fault imitates a classic bug: a per-request value leaking into the
    # key, so every lookup misses while the cache still gets written.
    salt = secrets.token_hex(4) if bypass else ""
    return f"cache:{digest}{salt}"


@dataclass
class CacheSizeTracker:
    """Bytes held by live cache entries that this agent wrote, as entries expire.

    Entries stay in the order they expire (every entry lives CACHE_TTL_S from its write),
    so each write drops the expired ones from the front and keeps a running total, instead
    of scanning every entry.
    """

    entries: OrderedDict[str, tuple[int, float]] = field(default_factory=OrderedDict)
    total: int = 0

    def add(self, key: str, size: int, now: float) -> int:
        if key in self.entries:
            self.total -= self.entries.pop(key)[0]
        self.entries[key] = (size, now + CACHE_TTL_S)
        self.total += size
        while self.entries:
            oldest, (oldest_size, expires) = next(iter(self.entries.items()))
            if expires > now:
                break
            del self.entries[oldest]
            self.total -= oldest_size
        return self.total


class AgentStore:
    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self.cache_size = CacheSizeTracker()

    async def ping(self) -> str | None:
        """None when Redis answers, else the cause in words."""
        try:
            await self.redis.ping()
        except (RedisError, OSError) as error:
            return f"{type(error).__name__}: {error}"
        return None

    async def cache_get(self, key: str) -> dict | None:
        try:
            raw = await self.redis.get(key)
        except (RedisError, OSError) as error:
            instrumentation.record_cache_operation("get", "error")
            log.warning("cache_get_failed", error=str(error), hint="is Redis running?")
            return None
        cached = _decode(raw, key, valid=_is_cached_answer)
        instrumentation.record_cache_operation("get", "hit" if cached is not None else "miss")
        return cached

    async def cache_set(self, key: str, value: dict) -> None:
        payload = json.dumps(value).encode()
        try:
            await self.redis.set(key, payload, ex=CACHE_TTL_S)
        except (RedisError, OSError) as error:
            instrumentation.record_cache_operation("set", "error")
            log.warning("cache_set_failed", error=str(error), hint="is Redis running?")
            return
        instrumentation.record_cache_operation("set", "success")
        instrumentation.record_cache_size(self.cache_size.add(key, len(payload), time.time()))

    async def load_checkpoint(self, thread_id: str) -> list[dict]:
        try:
            raw = await self.redis.get(f"checkpoint:{thread_id}")
        except (RedisError, OSError) as error:
            instrumentation.record_checkpoint("load", BACKEND, failed=True)
            log.warning("checkpoint_load_failed", thread_id=thread_id, error=str(error))
            return []
        instrumentation.record_checkpoint("load", BACKEND, failed=False)
        turns = _decode(raw, f"checkpoint:{thread_id}", valid=_is_checkpoint)
        return turns if turns is not None else []

    async def save_checkpoint(self, thread_id: str, turns: list[dict]) -> None:
        payload = json.dumps(turns).encode()
        try:
            await self.redis.set(f"checkpoint:{thread_id}", payload, ex=CHECKPOINT_TTL_S)
        except (RedisError, OSError) as error:
            instrumentation.record_checkpoint("save", BACKEND, failed=True)
            log.warning("checkpoint_save_failed", thread_id=thread_id, error=str(error))
            return
        instrumentation.record_checkpoint("save", BACKEND, failed=False, size=len(payload))
