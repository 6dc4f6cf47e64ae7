"""The Codomyrmex namespace; see codomyrmex.logistics.orchestration.project."""
