"""Drivers by name, shared by power and flash: the built-in ones and a site's own.

Nothing registers itself on import. Each capability lists its built-in drivers; a
site's drivers are packages declaring an entry point (``labfleet.power_drivers``,
``labfleet.flash_drivers``) whose object is a driver of that capability, and they are
added only when ``with_site_drivers`` is called.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from labfleet.errors import Conflict, Invalid, NotFound

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

R = TypeVar("R", bound="DataclassInstance")
D = TypeVar("D")
P = TypeVar("P")
DriverT = TypeVar("DriverT", bound="Driver[Any, Any, Any]")


@dataclass(frozen=True, slots=True)
class Driver(Generic[R, D, P]):
    """A driver's name, the resource its parameters make, and how to build it from its deps."""

    name: str
    resource: type[R]
    build: Callable[[R, D], P]


def by_name(drivers: Iterable[DriverT]) -> Mapping[str, DriverT]:
    return MappingProxyType({driver.name: driver for driver in drivers})


def with_site_drivers(
    kind: type[DriverT],
    group: str,
    builtin: Mapping[str, DriverT],
    found: Iterable[EntryPoint] | None = None,
) -> Mapping[str, DriverT]:
    """``builtin`` and the drivers of the ``group`` entry points, which must be ``kind``.

    A site driver may not take a built-in's name, and its entry point's name must be the
    driver's own.
    """
    drivers = dict(builtin)
    for entry in entry_points(group=group) if found is None else found:
        driver = entry.load()
        if not isinstance(driver, kind):
            raise Invalid(f"entry point {entry.name} ({entry.value}) is not a {kind.__name__}")
        if driver.name != entry.name:
            raise Invalid(f"entry point {entry.name} names a driver called {driver.name}")
        if driver.name in drivers:
            raise Conflict(f"{kind.__name__} {driver.name} is already registered")
        drivers[driver.name] = driver
    return MappingProxyType(drivers)


def build(
    drivers: Mapping[str, Driver[Any, D, P]], noun: str, name: str, params: Mapping[str, object], deps: D
) -> P:
    """The driver called ``name``, for the device ``params`` describe."""
    driver = drivers.get(name)
    if driver is None:
        raise NotFound(
            f"no {noun} driver called {name!r}; known: {', '.join(sorted(drivers))}", field="driver"
        )
    return driver.build(resource_from(driver.resource, params), deps)


def resource_from(resource: type[R], params: Mapping[str, object]) -> R:
    """A resource from the parameters it has; ``Invalid`` naming a missing one.

    Parameters the resource does not have (``host``, ``ssh_port``: how to reach the
    controller) are the caller's business and are ignored here.
    """
    fields = dataclasses.fields(resource)
    for field in fields:
        required = field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING
        if required and field.name not in params:
            raise Invalid(f"{field.name} is required", field=field.name)
    return resource(**{field.name: params[field.name] for field in fields if field.name in params})


def needs(value: D | None, what: str) -> D:
    """A dependency a driver cannot work without; ``Invalid`` naming it when missing."""
    if value is None:
        raise Invalid(f"{what}")
    return value
