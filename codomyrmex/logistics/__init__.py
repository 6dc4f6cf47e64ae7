"""Logistics modules of Codomyrmex."""
