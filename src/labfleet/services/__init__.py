"""Use cases, one package per capability, built on one another one way (import-linter):

    pipelines > environments > flashing | health > power | builds > inventory
              > reservations > artifacts > core

Each package uses the same few names for the same roles:

- ``service.py``: the use cases the API and the CLI call; they flush, never commit (the
  request or the worker owns the transaction);
- ``run.py``: the device work of one claimed job under a lease, which commits its own
  progress in short transactions with no device work inside one;
- ``access.py``: the seam to ``hw/`` (drivers and consoles made from stored wiring);
- plain nouns (``stages.py``, ``compatibility.py``, ``cycle.py``): pure rules.
"""
