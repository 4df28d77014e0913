"""Statuses as the API answers them: every one a StatusOut, every work status an enum that
carries its label and colour in the resource statuses' palette."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterator

from pydantic import BaseModel

import labfleet.schemas
from labfleet.api.routes.statuses import WORK_STATUSES
from labfleet.schemas.common import StatusOut
from labfleet.schemas.enums import BuildJobStatus, WorkStatus

# The colours of the status tables the migrations seed.
PALETTE = {"green", "orange", "red", "blue", "grey", "purple"}
WORK = [BuildJobStatus, *WORK_STATUSES.values()]


def out_models() -> Iterator[type[BaseModel]]:
    for info in pkgutil.iter_modules(labfleet.schemas.__path__, "labfleet.schemas."):
        module = importlib.import_module(info.name)
        for value in vars(module).values():
            if (
                isinstance(value, type)
                and issubclass(value, BaseModel)
                and value.__module__ == module.__name__
                and value.__name__.endswith("Out")
            ):
                yield value


def test_every_out_model_answers_its_status_as_a_status_out() -> None:
    with_status = {
        m.__name__: m.model_fields["status"].annotation for m in out_models() if "status" in m.model_fields
    }
    assert with_status == dict.fromkeys(with_status, StatusOut)
    # Every collection that has a status is in the walk, resources and work alike.
    assert {
        "BuildServerOut",
        "HostOut",
        "BoardOut",
        "BuildJobOut",
        "FlashJobOut",
        "PowerActionOut",
        "PipelineOut",
        "StageOut",
        "TestResultOut",
        "EnvironmentOut",
    } <= set(with_status)


def test_every_work_status_has_a_label_and_a_colour_of_the_palette() -> None:
    for enum in WORK:
        for status in enum:
            assert status.label and status.label[0].isupper(), status
            assert status.colour in PALETTE, status
            assert StatusOut.of(status) == StatusOut(
                value=status.value, label=status.label, colour=status.colour
            )


def test_a_value_looks_the_same_whatever_it_is_the_status_of() -> None:
    looks: dict[str, set[tuple[str, str]]] = {}
    for enum in WORK:
        for status in enum:
            looks.setdefault(status.value, set()).add((status.label, status.colour))
    assert {value: seen for value, seen in looks.items() if len(seen) > 1} == {}


def test_a_work_status_is_its_value_where_a_string_is_wanted() -> None:
    status = BuildJobStatus("running")
    assert status is BuildJobStatus.running
    assert (status == "running", str(status), f"{status}") == (True, "running", "running")
    assert issubclass(BuildJobStatus, WorkStatus) and isinstance(status, str)
