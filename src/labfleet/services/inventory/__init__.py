"""Build servers, QEMU hosts and boards: registration (through the devices or input only),
updates, removal, credentials."""
