"""The REST edge: parse, authorize, call a service, render."""
