"""The libvirt driver against libvirt's own in-process test driver (``test:///default``).

Validates: 7.2, 7.3, 7.5 (capabilities and capacity come from libvirt)
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from labfleet.errors import NotFound, Unreachable
from labfleet.hw.libvirt import DomainSpec, LibvirtHost, console_url, domain_xml, parse_capabilities

QEMU_CAPS = """<capabilities>
  <host><cpu><arch>x86_64</arch></cpu></host>
  <guest><os_type>hvm</os_type>
    <arch name='x86_64'><machine maxCpus='255'>pc-i440fx-7.2</machine>
      <machine canonical='pc-i440fx-7.2' maxCpus='255'>pc</machine><machine>q35</machine>
      <domain type='qemu'/><domain type='kvm'/></arch></guest>
  <guest><os_type>hvm</os_type>
    <arch name='aarch64'><machine>virt-7.2</machine><machine canonical='virt-7.2'>virt</machine>
      <domain type='qemu'/></arch></guest>
  <guest><os_type>xen</os_type><arch name='x86_64'><domain type='xen'/></arch></guest>
</capabilities>"""


def test_capabilities_name_architectures_the_kernel_way() -> None:
    caps = parse_capabilities(QEMU_CAPS)
    assert caps.host_arch == "x86_64"
    assert caps.machine_types == {"arm64": ["virt", "virt-7.2"], "x86_64": ["pc", "pc-i440fx-7.2", "q35"]}
    assert caps.kvm is True
    assert caps.kvm_architectures == {"x86_64"}


def test_tcg_only_host_has_no_kvm() -> None:
    assert parse_capabilities(QEMU_CAPS.replace("<domain type='kvm'/>", "")).kvm is False


def spec(**overrides: object) -> DomainSpec:
    values: dict[str, object] = {
        "name": "lf-test-1",
        "architecture": "arm64",
        "machine": "virt",
        "vcpus": 2,
        "memory_mb": 256,
        "kernel": "/var/lib/labfleet/vmlinuz",
        "initrd": "/var/lib/labfleet/initrd.img",
        "cmdline": "console=ttyAMA0 quiet & <odd>",
        "console_port": 43001,
    }
    values.update(overrides)
    return DomainSpec(**values)  # type: ignore[arg-type]


def test_domain_xml_carries_the_spec_escaped() -> None:
    root = ET.fromstring(domain_xml(spec()))
    assert root.get("type") == "qemu"
    os_type = root.find("os/type")
    assert os_type is not None and os_type.get("arch") == "aarch64" and os_type.get("machine") == "virt"
    assert root.findtext("os/cmdline") == "console=ttyAMA0 quiet & <odd>"
    assert root.findtext("memory") == "256" and root.findtext("vcpu") == "2"
    assert console_url(domain_xml(spec())) == "socket://127.0.0.1:43001"
    assert console_url(domain_xml(spec(console_port=None))) is None


async def test_host_statistics_and_capabilities_from_libvirt() -> None:
    async with await LibvirtHost.open("test:///default") as host:
        stats = await host.stats()
        assert stats.cpu_cores == 16 and stats.memory_mb == 3072
        caps = await host.capabilities()
        assert caps.host_arch == "i386"
        assert caps.kvm is False


async def test_define_start_destroy_undefine() -> None:
    xml = domain_xml(spec(name="lf-unit", architecture="i386", machine="pc", virt_type="test"))
    async with await LibvirtHost.open("test:///default") as host:
        before = {d.name for d in await host.domains()}
        assert await host.define(xml) == "lf-unit"
        await host.start("lf-unit")
        running = {d.name: d for d in await host.domains()}
        assert running["lf-unit"].running and running["lf-unit"].vcpus == 2
        assert await host.console_url("lf-unit") == "socket://127.0.0.1:43001"
        await host.destroy("lf-unit")
        await host.destroy("lf-unit")  # already stopped: still fine
        await host.undefine("lf-unit")
        assert {d.name for d in await host.domains()} == before
        with pytest.raises(NotFound):
            await host.start("lf-unit")


async def test_an_unreachable_daemon_is_a_device_error() -> None:
    with pytest.raises(Unreachable) as info:
        await LibvirtHost.open("qemu+tcp://127.0.0.1:1/system", timeout=10)
    assert "libvirt" in info.value.message
