"""Orchestration modules of Codomyrmex."""
