"""QEMU hosts through libvirt: capabilities, statistics, domains from generated XML.

libvirt-python is blocking, so every call runs in a worker thread, one at a time per
connection, each under a timeout. Errors go through ``translate.libvirt_errors``.
"""

from __future__ import annotations

import asyncio
import contextlib
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import urlsplit

import libvirt

from labfleet.errors import DeviceError, NotFound, Timeout
from labfleet.hw.translate import libvirt_errors

T = TypeVar("T")

# libvirt prints every error on stderr by default; they are raised and translated instead.
libvirt.registerErrorHandler(lambda _ctx, _err: None, None)

# libvirt's architecture names -> kernel architecture names used across labfleet.
KERNEL_ARCH = {
    "x86_64": "x86_64",
    "i686": "i386",
    "aarch64": "arm64",
    "armv7l": "arm",
    "riscv64": "riscv64",
    "ppc64le": "ppc64le",
    "s390x": "s390x",
    "mips64": "mips64",
}
LIBVIRT_ARCH = {kernel: lv for lv, kernel in KERNEL_ARCH.items()}


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a host can emulate: machine types per architecture, and whether KVM is offered."""

    host_arch: str
    machine_types: dict[str, list[str]]
    kvm_architectures: frozenset[str]

    @property
    def kvm(self) -> bool:
        return self.host_arch in self.kvm_architectures


@dataclass(frozen=True, slots=True)
class HostStats:
    cpu_cores: int
    memory_mb: int
    memory_free_mb: int | None
    storage_gb: float | None
    storage_free_gb: float | None


@dataclass(frozen=True, slots=True)
class DomainInfo:
    name: str
    uuid: str
    running: bool
    vcpus: int
    memory_mb: int


@dataclass(frozen=True, slots=True)
class DomainSpec:
    """A VM that boots a kernel directly: the shape labfleet deploys artifacts into."""

    name: str
    architecture: str  # kernel name: x86_64, arm64, ...
    machine: str
    vcpus: int
    memory_mb: int
    kernel: str
    initrd: str | None = None
    dtb: str | None = None
    cmdline: str = ""
    console_port: int | None = None
    console_host: str = "127.0.0.1"
    virt_type: str = "qemu"  # "kvm" only where the host offers it
    cpu_model: str | None = None
    disks: list[str] = field(default_factory=list)


def parse_capabilities(xml: str) -> Capabilities:
    root = ET.fromstring(xml)  # noqa: S314 - the XML comes from libvirt, not from users
    host_arch = KERNEL_ARCH.get(root.findtext("host/cpu/arch", ""), root.findtext("host/cpu/arch", ""))
    machines: dict[str, set[str]] = {}
    kvm: set[str] = set()
    for guest in root.iter("guest"):
        if guest.findtext("os_type") != "hvm":
            continue
        arch_el = guest.find("arch")
        if arch_el is None:
            continue
        arch = KERNEL_ARCH.get(arch_el.get("name", ""), arch_el.get("name", ""))
        names = machines.setdefault(arch, set())
        for machine in arch_el.iter("machine"):
            if machine.text:
                names.add(machine.text)
            if machine.get("canonical"):
                names.add(machine.get("canonical", ""))
        if any(d.get("type") == "kvm" for d in arch_el.iter("domain")):
            kvm.add(arch)
    return Capabilities(
        host_arch=host_arch,
        machine_types={arch: sorted(names) for arch, names in sorted(machines.items())},
        kvm_architectures=frozenset(kvm),
    )


def domain_xml(spec: DomainSpec) -> str:
    """libvirt domain XML for ``spec``, built as a tree so every value is escaped."""
    arch = LIBVIRT_ARCH.get(spec.architecture, spec.architecture)
    domain = ET.Element("domain", type=spec.virt_type)
    ET.SubElement(domain, "name").text = spec.name
    ET.SubElement(domain, "memory", unit="MiB").text = str(spec.memory_mb)
    ET.SubElement(domain, "vcpu").text = str(spec.vcpus)
    os_el = ET.SubElement(domain, "os")
    ET.SubElement(os_el, "type", arch=arch, machine=spec.machine).text = "hvm"
    ET.SubElement(os_el, "kernel").text = spec.kernel
    if spec.initrd:
        ET.SubElement(os_el, "initrd").text = spec.initrd
    if spec.dtb:
        ET.SubElement(os_el, "dtb").text = spec.dtb
    if spec.cmdline:
        ET.SubElement(os_el, "cmdline").text = spec.cmdline
    if spec.cpu_model:
        cpu = ET.SubElement(domain, "cpu", mode="custom", match="exact")
        ET.SubElement(cpu, "model", fallback="allow").text = spec.cpu_model
    ET.SubElement(domain, "on_poweroff").text = "destroy"
    ET.SubElement(domain, "on_reboot").text = "restart"
    ET.SubElement(domain, "on_crash").text = "destroy"
    devices = ET.SubElement(domain, "devices")
    for index, path in enumerate(spec.disks):
        disk = ET.SubElement(devices, "disk", type="file", device="disk")
        ET.SubElement(disk, "driver", name="qemu", type="raw")
        ET.SubElement(disk, "source", file=path)
        ET.SubElement(disk, "target", dev=f"vd{chr(ord('a') + index)}", bus="virtio")
    if spec.console_port is not None:
        serial = ET.SubElement(devices, "serial", type="tcp")
        ET.SubElement(serial, "source", mode="bind", host=spec.console_host, service=str(spec.console_port))
        ET.SubElement(serial, "protocol", type="raw")
        ET.SubElement(serial, "target", port="0")
    ET.SubElement(devices, "memballoon", model="none")
    return ET.tostring(domain, encoding="unicode")


def console_url(xml: str) -> str | None:
    """The ``socket://`` URL of a domain's first TCP serial console, if it has one."""
    root = ET.fromstring(xml)  # noqa: S314 - the XML comes from libvirt
    for serial in root.iter("serial"):
        source = serial.find("source")
        if serial.get("type") == "tcp" and source is not None and source.get("service"):
            return f"socket://{source.get('host', '127.0.0.1')}:{source.get('service')}"
    return None


class LibvirtHost:
    """One open connection to a libvirt daemon; use ``async with await LibvirtHost.open(...)``."""

    def __init__(self, uri: str, conn: Any, timeout: float) -> None:
        self.uri = uri
        self._conn = conn
        self._timeout = timeout
        self._lock = asyncio.Lock()

    @classmethod
    async def open(cls, uri: str, *, timeout: float = 20.0) -> LibvirtHost:
        what = _where(uri)
        try:
            conn = await asyncio.wait_for(asyncio.to_thread(_open, uri, what), timeout)
        except TimeoutError:
            raise Timeout(f"{what}: libvirt did not answer within {timeout:g} s") from None
        return cls(uri, conn, timeout)

    async def __aenter__(self) -> LibvirtHost:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            await asyncio.to_thread(_close, conn)

    async def _call(self, fn: Callable[[Any], T], *, timeout: float | None = None) -> T:
        if self._conn is None:
            raise DeviceError(f"{_where(self.uri)}: connection is closed")
        conn = self._conn
        limit = timeout or self._timeout

        def run() -> T:
            with libvirt_errors(_where(self.uri)):
                return fn(conn)

        async with self._lock:
            try:
                return await asyncio.wait_for(asyncio.to_thread(run), limit)
            except TimeoutError:
                raise Timeout(f"{_where(self.uri)}: libvirt call took longer than {limit:g} s") from None

    async def capabilities(self) -> Capabilities:
        return parse_capabilities(await self._call(lambda c: c.getCapabilities()))

    async def stats(self) -> HostStats:
        return await self._call(_stats)

    async def domains(self) -> list[DomainInfo]:
        return await self._call(lambda c: [_domain_info(d) for d in c.listAllDomains()])

    async def define(self, xml: str) -> str:
        """Define a persistent domain from ``xml``; returns its name."""
        return await self._call(lambda c: str(c.defineXML(xml).name()))

    async def start(self, name: str, *, paused: bool = False) -> None:
        """Start a defined domain; ``paused``: its CPUs wait for ``resume`` (so that a console
        can be attached before the guest prints anything)."""
        flags = libvirt.VIR_DOMAIN_START_PAUSED if paused else 0
        await self._call(lambda c: _lookup(c, name).createWithFlags(flags))

    async def resume(self, name: str) -> None:
        await self._call(lambda c: _lookup(c, name).resume())

    async def exists(self, name: str) -> bool:
        return await self._call(lambda c: name in {d.name() for d in c.listAllDomains()})

    async def destroy(self, name: str) -> None:
        """Stop a domain at once (pull the plug); stopping a stopped one is not an error."""

        def stop(c: Any) -> None:
            dom = _lookup(c, name)
            if dom.isActive():
                dom.destroy()

        await self._call(stop)

    async def undefine(self, name: str) -> None:
        await self._call(lambda c: _lookup(c, name).undefine())

    async def xml(self, name: str) -> str:
        return await self._call(lambda c: str(_lookup(c, name).XMLDesc(0)))

    async def console_url(self, name: str) -> str | None:
        return console_url(await self.xml(name))


def _where(uri: str) -> str:
    parts = urlsplit(uri)
    return f"libvirt {parts.scheme}://{parts.netloc}{parts.path}"


def _open(uri: str, what: str) -> Any:
    with libvirt_errors(what):
        return libvirt.open(uri)


def _close(conn: Any) -> None:
    # Closing a connection that already broke: there is nothing left to release.
    with contextlib.suppress(libvirt.libvirtError):
        conn.close()


def _lookup(conn: Any, name: str) -> Any:
    try:
        return conn.lookupByName(name)
    except libvirt.libvirtError as exc:
        if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
            raise NotFound(f"no domain named {name!r}") from exc
        raise


def _domain_info(dom: Any) -> DomainInfo:
    state, max_mem_kib, _mem, vcpus, _cpu_time = dom.info()
    return DomainInfo(
        name=dom.name(),
        uuid=dom.UUIDString(),
        running=state == libvirt.VIR_DOMAIN_RUNNING,
        vcpus=vcpus,
        memory_mb=max_mem_kib // 1024,
    )


def _optional(fn: Callable[[], T]) -> T | None:
    # Not every driver offers every statistic (the test driver has no memory stats).
    try:
        return fn()
    except libvirt.libvirtError as exc:
        if exc.get_error_code() == libvirt.VIR_ERR_NO_SUPPORT:
            return None
        raise


def _stats(conn: Any) -> HostStats:
    _model, memory_mb, cpus, *_ = conn.getInfo()
    memory = _optional(lambda: conn.getMemoryStats(libvirt.VIR_NODE_MEMORY_STATS_ALL_CELLS))
    free_mb = None
    if memory:
        free_mb = (memory.get("free", 0) + memory.get("buffers", 0) + memory.get("cached", 0)) // 1024
    capacity = available = 0
    pools = _optional(lambda: conn.listAllStoragePools(libvirt.VIR_CONNECT_LIST_STORAGE_POOLS_ACTIVE)) or []
    for pool in pools:
        _state, cap, _alloc, avail = pool.info()
        capacity += cap
        available += avail
    gib = 1024**3
    return HostStats(
        cpu_cores=int(cpus),
        memory_mb=int(memory_mb),
        memory_free_mb=free_mb,
        storage_gb=round(capacity / gib, 2) if pools else None,
        storage_free_gb=round(available / gib, 2) if pools else None,
    )
