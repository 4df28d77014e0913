"""Domain types shared by every layer: validated input, enums, identities."""
