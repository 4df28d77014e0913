"""labfleet's errors, one tree for the whole code base.

::

    LabfleetError
    ├── NotFound              an id or name that does not exist
    │   └── Gone              it existed; retention removed it (when)
    ├── Conflict              unique value taken, or a state that forbids the action
    │   └── Unavailable       nothing can take the request now (alternatives, decision)
    ├── Invalid               input that is well-formed but not acceptable (field + reason)
    ├── Unauthenticated       no credentials, or credentials that are not valid
    ├── Forbidden             valid credentials with too little role
    ├── Corrupted             bytes that do not match their SHA-256 (expected, actual)
    └── DeviceError           a device could not do what was asked
        ├── Unreachable
        ├── AuthFailed
        ├── HostKeyChanged
        ├── Timeout
        ├── Busy              (retry_after seconds)
        └── CommandFailed     (exit_status, stderr)

No error carries an HTTP status: the API maps this tree to HTTP in one table.
"""

from __future__ import annotations

from typing import Any


class LabfleetError(Exception):
    """Base of every error labfleet raises on purpose."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class NotFound(LabfleetError):
    pass


class Gone(NotFound):
    pass


class Conflict(LabfleetError):
    pass


class Unavailable(Conflict):
    """Resources match the request but none can take it now; ``alternatives`` say what else to
    try and what each lacks (R11.4), ``decision`` how the choice was made (R13.5)."""

    def __init__(
        self,
        message: str,
        *,
        alternatives: list[dict[str, Any]],
        decision: dict[str, Any] | None = None,
        field: str | None = None,
    ) -> None:
        super().__init__(message, field=field)
        self.alternatives = alternatives
        self.decision = decision


class Invalid(LabfleetError):
    pass


class Unauthenticated(LabfleetError):
    pass


class Forbidden(LabfleetError):
    pass


class Corrupted(LabfleetError):
    """Bytes whose SHA-256 is not the one they were stored or declared under: never serve them as good."""

    def __init__(self, message: str, *, expected: str, actual: str, field: str | None = None) -> None:
        super().__init__(message, field=field)
        self.expected = expected
        self.actual = actual


class DeviceError(LabfleetError):
    pass


class Unreachable(DeviceError):
    pass


class AuthFailed(DeviceError):
    pass


class HostKeyChanged(DeviceError):
    pass


class Timeout(DeviceError):
    pass


class Busy(DeviceError):
    def __init__(self, message: str, *, retry_after: float, field: str | None = None) -> None:
        super().__init__(message, field=field)
        self.retry_after = retry_after


class CommandFailed(DeviceError):
    def __init__(self, message: str, *, exit_status: int, stderr: str = "", field: str | None = None) -> None:
        super().__init__(message, field=field)
        self.exit_status = exit_status
        self.stderr = stderr
