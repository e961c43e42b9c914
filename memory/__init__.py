"""The memory store ``langgraph dev`` serves (``langgraph.json`` → ``"store"``); see :mod:`memory.store`."""

from memory.store import make_store

__all__ = ["make_store"]
