"""The QEMU host: libvirtd answers on qemu:///system and over SSH, with TCG for both boards' arches."""

from __future__ import annotations

import libvirt
import pytest

from tests.lab.conftest import VirtualLab

pytestmark = pytest.mark.lab


@pytest.mark.parametrize("which", ["local", "ssh"])
def test_libvirtd_answers(lab: VirtualLab, which: str) -> None:
    uri = lab.libvirt_uri if which == "local" else lab.libvirt_ssh_uri
    conn = libvirt.open(uri)
    try:
        assert conn.getType() == "QEMU"
        assert conn.getHostname()
        assert isinstance(conn.listAllDomains(), list)
        # Nothing may ask for KVM: guests are plain QEMU (TCG) for both architectures.
        for arch, machine in (("x86_64", "pc"), ("aarch64", "virt")):
            caps = conn.getDomainCapabilities(None, arch, machine, "qemu")
            assert "<domain>qemu</domain>" in caps
    finally:
        conn.close()


def test_default_network_is_not_started(lab: VirtualLab) -> None:
    conn = libvirt.open(lab.libvirt_uri)
    try:
        assert "default" not in conn.listNetworks()
    finally:
        conn.close()
