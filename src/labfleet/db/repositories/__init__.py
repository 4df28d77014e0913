"""Every query labfleet runs lives in this package."""
