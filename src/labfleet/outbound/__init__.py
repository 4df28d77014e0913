"""Sending notifications out: email over SMTP, signed webhooks, Apprise URLs.

Like ``hw/`` for devices, this is the only code that speaks to mail servers and web hooks,
and it knows no database, services or domain types: each transport takes a frozen target
(where, and how to authenticate) and a ``Notice`` (what to say), and either returns what
the receiver answered or raises ``DeliveryFailed`` with a reason fit for a delivery log.
"""

from labfleet.outbound.message import DeliveryFailed, Notice, Sent

__all__ = ["DeliveryFailed", "Notice", "Sent"]
