"""What a QEMU guest of each architecture boots as when the request does not say: its machine
type, its CPU model under TCG, its serial console, and the kernel command line that follows.

Pure data and rules, with no libvirt in them, so that the compatibility rules can use them.
"""

from __future__ import annotations

DEFAULT_MACHINE = {"x86_64": "pc", "arm64": "virt", "arm": "virt", "riscv64": "virt"}
DEFAULT_CPU = {"x86_64": "qemu64", "arm64": "cortex-a57", "arm": "cortex-a15", "riscv64": None}
"""Under TCG (no KVM), QEMU needs a CPU model it can emulate; with KVM the host's is passed through."""
CONSOLE_DEVICE = {"x86_64": "ttyS0", "arm64": "ttyAMA0", "arm": "ttyAMA0", "riscv64": "ttyS0"}
"""The serial console device of each architecture's default machine."""
ROOT_DISK = "root=/dev/vda rw"
"""Where a guest booted from a rootfs disk (the first virtio disk) finds its root."""


def kernel_cmdline(architecture: str, given: str, *, root_disk: bool) -> str:
    """``given``, with the console on the machine's serial device and, when the guest boots
    from a disk rather than an initramfs, the root on it; whatever ``given`` says wins."""
    cmdline = given.strip()
    if "console=" not in cmdline and architecture in CONSOLE_DEVICE:
        cmdline = f"console={CONSOLE_DEVICE[architecture]} {cmdline}".strip()
    if root_disk and "root=" not in cmdline:
        cmdline += f" {ROOT_DISK}"
    return cmdline
