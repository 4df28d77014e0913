"""Notifications (R16.5): channels, and delivering the outbox of alert changes to them."""
