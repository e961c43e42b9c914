"""Integration layer: the only place that imports langchain / langgraph."""
