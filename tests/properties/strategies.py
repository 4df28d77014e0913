"""Hypothesis strategies for valid registrations of each collection."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from labfleet.schemas.enums import ARCHITECTURE_ALIASES, Architecture

_name = st.from_regex(r"\A[a-z][a-z0-9-]{0,14}[a-z0-9]\Z")
hostnames = st.builds(
    lambda a, b: f"{a}.{b}", _name, st.sampled_from(["lab", "lab.example.org", "rack1.lab"])
)
addresses = st.one_of(st.ip_addresses(v=4).map(str), hostnames)
label_keys = st.from_regex(r"\A[a-z0-9]([a-z0-9._/-]{0,20}[a-z0-9])?\Z")
label_values = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=40).map(str.strip)
labels = st.dictionaries(label_keys, label_values, max_size=5)
descriptions = st.text(
    st.characters(blacklist_categories=("Cc", "Cs")) | st.sampled_from("\n\t"), max_size=50
)
users = st.from_regex(r"\A[a-z_][a-z0-9_-]{0,15}\Z")
slugs = st.from_regex(r"\A[a-z0-9]([a-z0-9_-]{0,20}[a-z0-9])?\Z")
architectures = st.sampled_from([a.value for a in Architecture] + list(ARCHITECTURE_ALIASES))

ssh = st.fixed_dictionaries(
    {"username": users, "port": st.integers(1, 65535)},
    optional={"password": st.text(min_size=1, max_size=30).filter(str.strip)},
)


def build_servers() -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {"hostname": hostnames, "address": addresses, "ssh": ssh},
        optional={
            "max_concurrent_builds": st.integers(1, 1024),
            "labels": labels,
            "description": descriptions,
        },
    )


def hosts() -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {
            "hostname": hostnames,
            "address": addresses,
            "ssh": ssh,
            "libvirt_uri": st.sampled_from(
                [
                    "qemu:///system",
                    "qemu+ssh://root@kvm1.lab/system",
                    "qemu+tcp://kvm2/session",
                    "test:///default",
                ]
            ),
        },
        optional={"utilization_threshold_pct": st.integers(1, 100), "labels": labels},
    )


def _console() -> st.SearchStrategy[str]:
    return st.one_of(
        st.builds(lambda h, p: f"socket://{h}:{p}", hostnames, st.integers(1, 65535)),
        st.builds(lambda h, p: f"rfc2217://{h}:{p}", hostnames, st.integers(1, 65535)),
        st.from_regex(r"\A/dev/tty(USB|ACM|S)[0-9]\Z"),
    )


_power = st.one_of(
    st.fixed_dictionaries(
        {
            "driver": st.just("pdudaemon"),
            "url": st.just("http://pdu:16421"),
            "pdu": _name,
            "outlet": st.integers(0, 48),
        }
    ),
    st.fixed_dictionaries(
        {"driver": st.just("gpio-relay"), "host": hostnames, "line": st.integers(0, 1023)},
        optional={"active_low": st.booleans()},
    ),
    st.fixed_dictionaries(
        {"driver": st.just("command"), "on": st.just("relay on 3"), "off": st.just("relay off 3")}
    ),
)


def boards() -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {
            "name": slugs,
            "board_type": slugs,
            "architecture": architectures,
            "serial_number": st.from_regex(r"\A[A-Z0-9][A-Z0-9-]{3,20}\Z"),
            "console_url": _console(),
        },
        optional={
            "power": _power,
            "peripherals": st.lists(slugs, unique=True, max_size=4),
            "firmware_version": st.from_regex(r"\Av[0-9]{1,2}\.[0-9]{1,2}\Z"),
            "labels": labels,
        },
    )
