"""Board power: on, off, state and the watched cycle, each recorded; the wiring to drivers."""
