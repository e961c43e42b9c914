"""Benchmarks of agent-tokred. Run all with ``python -m bench`` (``--quick`` for CI)."""
