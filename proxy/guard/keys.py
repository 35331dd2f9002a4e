"""Client keys: who is calling, checked in constant time, known by name only.

``general_settings.master_key`` (or ``THINKSTOP_MASTER_KEY``) and an optional list of
``client_keys`` (``name``, ``key``, optional ``budgets``). With any key configured, every
``/v1`` request needs ``Authorization: Bearer <key>``; health and metrics stay open, as a
load balancer and Prometheus expect (readiness names the models only to a caller with a
key). The key is checked from the headers alone, before any body is read
(:mod:`thinkstop.proxy.http.key_check`). A caller is known by the key's *name* from then
on (logs, metrics, budget scopes, errors); the key itself is never repeated."""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from thinkstop.proxy.config import BudgetSettings, GeneralSettings
from thinkstop.proxy.errors import ProxyError

MASTER = "master"


@dataclass(frozen=True, slots=True)
class Caller:
    """An authenticated caller (``name`` is safe to log); ``anonymous`` when keys are off."""

    name: str
    budgets: BudgetSettings | None = None


ANONYMOUS = Caller("anonymous")


@dataclass(frozen=True, slots=True)
class _Entry:
    caller: Caller
    key: bytes


class KeyRing:
    """The configured keys; :meth:`identify` compares a token with every one of them."""

    def __init__(self, settings: GeneralSettings) -> None:
        entries: list[_Entry] = []
        if settings.master_key:
            entries.append(_Entry(Caller(MASTER), settings.master_key.encode()))
        for client in settings.client_keys:
            entries.append(_Entry(Caller(client.name, client.budgets), client.key.encode()))
        self._entries = tuple(entries)

    @property
    def required(self) -> bool:
        return bool(self._entries)

    def identify(self, token: str) -> Caller | None:
        """The caller whose key is ``token``, or None.

        Every key is compared, each with :func:`hmac.compare_digest`, and the loop never
        stops early, so the time taken says nothing about which key came close.
        """
        candidate = token.encode()
        found: Caller | None = None
        for entry in self._entries:
            if hmac.compare_digest(candidate, entry.key) and found is None:
                found = entry.caller
        return found


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header value, or None."""
    scheme, _, token = (authorization or "").partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


def check_key(keys: KeyRing, authorization: str | None) -> Caller:
    """The caller an ``Authorization`` header value names, or a 401 (OpenAI-shaped)
    :class:`ProxyError`; :data:`ANONYMOUS` when no keys are configured."""
    if not keys.required:
        return ANONYMOUS
    token = bearer_token(authorization)
    if token is None:
        raise ProxyError(401, "missing API key: send 'Authorization: Bearer <key>'",
                         type_="authentication_error", code="missing_api_key")
    caller = keys.identify(token)
    if caller is None:
        raise ProxyError(401, "invalid API key", type_="authentication_error",
                         code="invalid_api_key")
    return caller
