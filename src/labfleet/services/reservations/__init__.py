"""Host capacity and whole boards held for an owner, and the choice of an ``auto`` target."""
