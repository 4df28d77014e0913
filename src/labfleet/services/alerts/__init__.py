"""Alerts people act on: listing, acknowledging and resolving them (R16)."""
