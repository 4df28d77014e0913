"""The engine's tests run on the build rig (``tests/build_rig.py``)."""

from tests.build_rig import rig  # noqa: F401
