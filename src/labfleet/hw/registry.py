"""Drivers by name, shared by power and flash: the built-in ones and a site's own.

Nothing registers itself on import. Each capability lists its built-in drivers; a
site's drivers are packages declaring an entry point (``labfleet.power_drivers``,
``labfleet.flash_drivers``) whose object is a driver of that capability, and they are
added only when ``with_site_drivers`` is called.

A driver's parameters are the fields of its resource, a dataclass: ``resource_from``
checks each against its field's type (and the resource's own ``__post_init__``) whether
they come from the API, to be stored, or from a stored wiring, to be used.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from pydantic import PydanticUndefinedAnnotation, PydanticUserError, TypeAdapter, ValidationError

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

    A site driver may not take a built-in's name, its entry point's name must be the
    driver's own, and its resource must be a dataclass whose fields' types can be checked.
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
        if not (isinstance(driver.resource, type) and dataclasses.is_dataclass(driver.resource)):
            raise Invalid(f"entry point {entry.name}: the resource of {driver.name} is not a dataclass")
        try:
            _adapter(driver.resource)
        except (PydanticUserError, PydanticUndefinedAnnotation) as exc:
            raise Invalid(
                f"entry point {entry.name}: the parameters of {driver.resource.__name__} cannot be "
                f"checked: {str(exc).splitlines()[0]}"
            ) from exc
        drivers[driver.name] = driver
    return MappingProxyType(drivers)


def driver_called(drivers: Mapping[str, DriverT], noun: str, name: str) -> DriverT:
    """The ``noun`` driver called ``name``; ``NotFound`` naming the known ones."""
    driver = drivers.get(name)
    if driver is None:
        raise NotFound(
            f"no {noun} driver called {name!r}; known: {', '.join(sorted(drivers))}", field="driver"
        )
    return driver


def build(
    drivers: Mapping[str, Driver[Any, D, P]], noun: str, name: str, params: Mapping[str, object], deps: D
) -> P:
    """The driver called ``name``, for the device ``params`` describe."""
    driver = driver_called(drivers, noun, name)
    return driver.build(resource_from(driver.resource, params), deps)


@functools.cache
def _adapter(resource: type[R]) -> TypeAdapter[R]:
    adapter = TypeAdapter(resource)
    adapter.rebuild(raise_errors=True)  # an annotation that names nothing fails here, not at first use
    return adapter


def parameter_names(resource: type[DataclassInstance]) -> frozenset[str]:
    """The parameters a resource is made from: its fields that ``__init__`` takes."""
    return frozenset(field.name for field in dataclasses.fields(resource) if field.init)


def resource_from(resource: type[R], params: Mapping[str, object]) -> R:
    """A resource from the parameters it has, each checked against its field's type.

    ``Invalid`` naming the first parameter at fault: missing, of the wrong type (a number
    given as text is taken as the number, as the API's models do), or refused by the
    resource's own ``__post_init__``. Parameters the resource does not have (``host``,
    ``ssh_port``: how to reach the controller) are the caller's business and are ignored here.
    """
    names = parameter_names(resource)
    adapter: TypeAdapter[R] = _adapter(resource)
    try:
        return adapter.validate_python({name: params[name] for name in names if name in params})
    except ValidationError as exc:
        raise _invalid(exc) from None


def parameters(resource: DataclassInstance) -> dict[str, Any]:
    """A resource's parameters as JSON values, as a wiring stores them (``resource_from`` takes them back)."""
    dumped: dict[str, Any] = _adapter(type(resource)).dump_python(resource, mode="json")
    return {name: value for name, value in dumped.items() if name in parameter_names(type(resource))}


def _invalid(exc: ValidationError) -> Invalid:
    error = exc.errors(include_url=False, include_input=False)[0]
    path = ".".join(str(part) for part in error["loc"])
    reason = str(error["msg"]).removeprefix("Value error, ")
    if error["type"] == "missing":
        return Invalid(f"{path} is required", field=path)
    return Invalid(f"{path}: {reason}" if path else reason, field=path or None)


def needs(value: D | None, what: str) -> D:
    """A dependency a driver cannot work without; ``Invalid`` naming it when missing."""
    if value is None:
        raise Invalid(f"{what}")
    return value
