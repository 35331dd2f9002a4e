"""Recent Responses, kept so that ``previous_response_id`` can continue a conversation.

A bounded, in-memory store per process (least recently used out first,
``general_settings.responses_store_size`` entries, 0 to turn it off). It is NOT shared
between replicas and does not survive a restart: behind a load balancer, a follow-up
that lands on another replica gets a clear 400 (send the conversation in ``input``, or
pin a client to one replica). Nothing here is durable storage, by design: the proxy
keeps no state that a replica could not lose.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from thinkstop.proxy.errors import ProxyError

Messages = list[dict[str, Any]]


@dataclass(frozen=True, slots=True)
class Stored:
    """A finished response: the conversation up to and including its output (chat
    messages, instructions left out), and the response object itself."""

    model: str
    messages: Messages
    response: dict[str, Any]


class ResponseStore:
    """``capacity`` recent responses by id."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._items: OrderedDict[str, Stored] = OrderedDict()

    def put(self, response_id: str, stored: Stored) -> None:
        if self.capacity <= 0:
            return
        self._items[response_id] = stored
        self._items.move_to_end(response_id)
        while len(self._items) > self.capacity:
            self._items.popitem(last=False)

    def get(self, response_id: str) -> Stored | None:
        stored = self._items.get(response_id)
        if stored is not None:
            self._items.move_to_end(response_id)
        return stored

    def previous(self, response_id: str) -> Stored:
        """The stored response a request continues from, or a 400 that says why not."""
        stored = self.get(response_id)
        if stored is None:
            raise ProxyError(
                400, f"previous_response_id: response {response_id!r} is not known to this "
                "thinkstop replica. Recent responses are kept in this process's memory only "
                f"(the last {self.capacity}; not shared between replicas, lost on restart): "
                "send the whole conversation in input instead",
                param="previous_response_id", code="previous_response_not_found")
        return stored
