"""Views folded from events. Pure: they import only ``domain``."""

from projections import tasks

__all__ = ["tasks"]
