"""labfleet: the control plane for embedded and kernel test labs."""

__version__ = "0.1.0"
