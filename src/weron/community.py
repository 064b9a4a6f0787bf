"""A community as the management API describes it: ``{"id", "clients", "persistent"}``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Community:
    id: str
    clients: int
    persistent: bool

    def to_json(self) -> dict[str, object]:
        return {"id": self.id, "clients": self.clients, "persistent": self.persistent}

    @classmethod
    def from_json(cls, document: Any) -> Community:
        """Parse one community object; ``ValueError`` says what is wrong with it."""
        if not isinstance(document, dict):
            raise ValueError(f"expected a community object, got {type(document).__name__}")
        community_id = document.get("id")
        clients = document.get("clients")
        persistent = document.get("persistent")
        if not isinstance(community_id, str):
            raise ValueError("community 'id' must be a string")
        if not isinstance(clients, int) or isinstance(clients, bool):
            raise ValueError("community 'clients' must be an integer")
        if not isinstance(persistent, bool):
            raise ValueError("community 'persistent' must be a boolean")
        return cls(community_id, clients, persistent)
