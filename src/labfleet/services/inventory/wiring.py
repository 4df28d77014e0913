"""A board's power and flash wiring, checked against the drivers installed before it is stored.

The API's models check a built-in driver's parameters (``schemas/wiring.py``); a site's
driver arrives as a ``SitePower`` / ``SiteFlash``, its parameters as they were sent.
Here, where the drivers are known, every wiring is checked against its driver's
resource (``hw/registry.resource_from``, which checks them again when the driver is
built): a driver that is not installed, or a parameter that is missing, unknown, of the
wrong type or refused by the resource is ``Invalid`` naming ``power.<param>`` or
``flash.<param>``, and nothing is stored.

``power_drivers`` and ``flash_drivers`` are the drivers of this installation, loaded once
per process: the ones power and flash access build from the stored wiring.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

from labfleet.errors import Invalid, NotFound
from labfleet.hw import flash, power, registry
from labfleet.schemas.wiring import FlashConfig, PowerConfig, SiteDriver


@functools.cache
def power_drivers() -> Mapping[str, power.PowerDriver]:
    """The built-in power drivers and those of the ``labfleet.power_drivers`` entry points."""
    return power.with_site_drivers()


@functools.cache
def flash_drivers() -> Mapping[str, flash.FlashDriver]:
    """The built-in flash drivers and those of the ``labfleet.flash_drivers`` entry points."""
    return flash.with_site_drivers()


def power_params(
    config: PowerConfig, *, drivers: Mapping[str, power.PowerDriver] | None = None
) -> dict[str, Any]:
    """The parameters to store of a power wiring, checked against its driver."""
    return _checked("power", power_drivers() if drivers is None else drivers, config, supplied={})


def flash_params(
    config: FlashConfig, *, board: str, drivers: Mapping[str, flash.FlashDriver] | None = None
) -> dict[str, Any]:
    """The parameters to store of a flash wiring, checked against its driver.

    Flash access gives every flash driver the board's name as ``board`` (``{board}`` in
    site commands): it is checked with the rest, but neither sent nor stored.
    """
    drivers = flash_drivers() if drivers is None else drivers
    return _checked("flash", drivers, config, supplied={"board": board})


def _checked(
    noun: str,
    drivers: Mapping[str, registry.Driver[Any, Any, Any]],
    config: PowerConfig | FlashConfig,
    supplied: Mapping[str, object],
) -> dict[str, Any]:
    try:
        driver = registry.driver_called(drivers, noun, config.driver)
    except NotFound as exc:
        raise Invalid(exc.message, field=f"{noun}.driver") from None
    if not isinstance(config, SiteDriver):
        # A built-in's model: its fields are the parameters, already checked by their types.
        params = config.model_dump(exclude={"driver", "secret"}, mode="json")
        _resource(noun, driver, {**params, **supplied})
        return params
    sent = dict(config.model_extra or {})
    names = registry.parameter_names(driver.resource) - supplied.keys()
    for name in sent:
        if name in supplied:
            raise Invalid(
                f"{noun} driver {driver.name}: {name} is not sent; labfleet gives the board's own",
                field=f"{noun}.{name}",
            )
        if name not in names:
            raise Invalid(
                f"{noun} driver {driver.name} has no parameter {name!r}; "
                f"its parameters: {', '.join(sorted(names)) or 'none'}",
                field=f"{noun}.{name}",
            )
    # Where the driver runs its commands (host, ssh_port, ssh_user), as far as it was given.
    reach = config.model_dump(exclude={"driver", "secret", *sent}, exclude_none=True, mode="json")
    made = _resource(noun, driver, {**reach, **sent, **supplied})
    return reach | {name: value for name, value in registry.parameters(made).items() if name in names}


def _resource(noun: str, driver: registry.Driver[Any, Any, Any], params: Mapping[str, object]) -> Any:
    try:
        return registry.resource_from(driver.resource, params)
    except Invalid as exc:
        raise Invalid(
            f"{noun} driver {driver.name}: {exc.message}",
            field=f"{noun}.{exc.field}" if exc.field else noun,
        ) from None
