"""Long-running work of a ``labfleet serve`` process: workers that claim durable rows with leases.

``Engine`` starts them beside the API and stops them with it; several processes on one
PostgreSQL each run one, and the leases keep them from doing the same work twice.
"""

from labfleet.engine.runner import Engine, EngineSettings

__all__ = ["Engine", "EngineSettings"]
