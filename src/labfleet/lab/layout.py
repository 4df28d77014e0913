"""What the virtual lab is made of: its ports, names and boards, fixed so that everyone can rely on them."""

from __future__ import annotations

from dataclasses import dataclass

from labfleet.errors import NotFound

LOOPBACK = "127.0.0.1"

# Below the kernel's ephemeral range (32768-60999), so that no client socket of another
# program, nor a test server on a random port, can be holding one when the lab starts.
SSH_PORT = 23022
PDU_PORT = 23421
PDU_NAME = "lab-pdu"
PDU_URL = f"http://{LOOPBACK}:{PDU_PORT}"

# The lab's git repository (made from lab/repo/ by `lab up`), served by git daemon.
GIT_PORT = 23418
REPO_NAME = "labfleet-lab.git"
REPO_BRANCH = "main"
REPO_URL = f"git://{LOOPBACK}:{GIT_PORT}/{REPO_NAME}"

BUILD_USER = "labbuild"
BUILD_SERVER_NAME = "lab-build"
HOST_NAME = "lab-kvm"
LOCAL_LIBVIRT_URI = "qemu:///system"

# Debian packages the lab runs; scripts/setup --lab installs them.
DEBIAN_PACKAGES = (
    "openssh-server",
    "libvirt-daemon-system",
    "libvirt-daemon-driver-qemu",
    "libvirt-clients",
    "qemu-system-x86",
    "qemu-system-arm",
    "qemu-utils",
    "ser2net",
    "socat",
    "gcc-aarch64-linux-gnu",
    "libc6-dev-arm64-cross",
    "busybox-static",
    "make",
    "cpio",
    "git",
    "gcc",
    "iproute2",
)


@dataclass(frozen=True, slots=True)
class Board:
    """One QEMU machine of the lab, and how it is wired: console port, outlet, boot image."""

    name: str
    board_type: str
    architecture: str  # labfleet's architecture name
    deb_arch: str  # Debian's name for it
    serial_number: str
    console_port: int
    rfc2217: bool
    outlet: int
    qemu: str
    machine: tuple[str, ...]
    console_device: str

    @property
    def console_url(self) -> str:
        if self.rfc2217:
            # pyserial would fail on ser2net's answer to SET_CONTROL over a pty; nothing here needs it.
            return f"rfc2217://{LOOPBACK}:{self.console_port}?ign_set_control"
        return f"socket://{LOOPBACK}:{self.console_port}"

    @property
    def kernel_package(self) -> str:
        """The Debian metapackage that names the current kernel of this architecture."""
        return f"linux-image-{self.deb_arch}:{self.deb_arch}"

    @property
    def banner(self) -> str:
        """The line the board's init prints just before it starts the shell."""
        return f"labfleet-lab: {self.name} booted"


BOARDS = (
    Board(
        name="lab-x86",
        board_type="qemu-x86_64",
        architecture="x86_64",
        deb_arch="amd64",
        serial_number="LAB-X86-0001",
        console_port=23001,
        rfc2217=False,
        outlet=1,
        qemu="qemu-system-x86_64",
        machine=("-machine", "pc", "-cpu", "qemu64"),
        console_device="ttyS0",
    ),
    Board(
        name="lab-arm64",
        board_type="qemu-virt-arm64",
        architecture="arm64",
        deb_arch="arm64",
        serial_number="LAB-ARM64-0001",
        console_port=23002,
        rfc2217=True,
        outlet=2,
        qemu="qemu-system-aarch64",
        machine=("-machine", "virt", "-cpu", "cortex-a57"),
        console_device="ttyAMA0",
    ),
)


def board_named(name_or_outlet: str) -> Board:
    """A board by its name or by its outlet number on the lab's PDU (as pdudaemon passes it)."""
    for board in BOARDS:
        if name_or_outlet in (board.name, str(board.outlet)):
            return board
    known = ", ".join(f"{b.name} (outlet {b.outlet})" for b in BOARDS)
    raise NotFound(f"virtual lab: no board or outlet {name_or_outlet!r}; the lab has {known}")
