"""Strategies: how scored units are reduced (prune, merge, structure-preserving compaction)."""
