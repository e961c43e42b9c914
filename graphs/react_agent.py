"""A ReAct-style agent (``create_agent``) whose context is kept small by agent-tokred.

Served by ``langgraph dev`` as ``react_agent`` (see ``langgraph.json``). Its two tools return the
kind of output that fills an agent's context: a long service log and a large JSON order listing.
The :class:`~agent_tokred.integration.middleware.TokenReductionMiddleware` holds each tool output
to 400 tokens as it returns, keeps every model call under 6,000 tokens, archives every original in
the server's store (namespaced by thread) and gives the model a ``recall`` tool to read one back.

The model is an offline rule-based fake by default (no API key needed); set
``AGENT_TOKRED_MODEL="provider:name"`` (e.g. ``openai:gpt-4o-mini``) to use a real one.
"""

from __future__ import annotations

import json

from langchain.agents import create_agent
from langchain_core.tools import tool

from agent_tokred.integration.fake_model import RuleBasedToolModel, chat_model_from_env
from agent_tokred.integration.middleware import TokenReductionMiddleware
from agent_tokred.tokens import resolve_counter

_SERVICES = ("api", "worker", "billing", "search")


@tool
def read_logs(query: str) -> str:
    """Read the last 500 log lines of the production services."""
    lines = []
    for i in range(500):
        service = _SERVICES[i % len(_SERVICES)]
        level = "ERROR" if i in (137, 402) else "INFO"
        detail = (
            "disk full on /var/data" if level == "ERROR" else f"request {1000 + i} served in {20 + i % 17} ms"
        )
        lines.append(f"2024-05-01 12:{i // 60 % 60:02d}:{i % 60:02d} {level} {service}-{i % 7} {detail}")
    return "\n".join(lines)


@tool
def list_orders(query: str) -> str:
    """List the 200 most recent orders as JSON."""
    orders = [
        {
            "id": f"ORD-{5000 + i}",
            "customer": f"customer-{i % 37}",
            "total_eur": round(12.5 + (i * 7.3) % 300, 2),
            "status": "refunded" if i % 41 == 0 else "shipped",
            "items": [f"SKU-{i % 13}", f"SKU-{(i * 3) % 17}"],
        }
        for i in range(200)
    ]
    return json.dumps({"orders": orders, "count": len(orders)})


def make_graph():  # type: ignore[no-untyped-def]
    """Build the agent (a function so tests can build fresh copies)."""
    offline = RuleBasedToolModel(tool_name="read_logs", count=resolve_counter(None).count)
    model = chat_model_from_env(offline)
    middleware = TokenReductionMiddleware(message_budget=400, call_budget=6000, criterion="lexical")
    return create_agent(
        model,
        tools=[read_logs, list_orders],
        middleware=[middleware],
        system_prompt="You are an on-call engineer. Use the tools, then answer briefly.",
        name="react_agent",
    )


graph = make_graph()
