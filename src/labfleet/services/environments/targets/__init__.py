"""Where an environment runs: a QEMU VM on a host or a board, behind one protocol (R5, R6).

Both kinds are driven the same way, as labgrid drives its targets: deploy, boot, console,
check, teardown (``base.Target``). ``provisioning.Provisioner`` keeps the environment's row
and picks the target by the environment's kind; ``qemu.QemuTarget`` and ``board.BoardTarget``
do the device work. Tests hand the provisioner targets of their own through the same seam.
"""
