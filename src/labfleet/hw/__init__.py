"""The only code that touches devices: SSH, libvirt, consoles, power and flash drivers.

Nothing here knows the database or HTTP routes. Errors of the libraries below are
translated once, in ``translate.py``, into labfleet's device errors.
"""
