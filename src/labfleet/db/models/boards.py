"""Physical boards: console, power and flash wiring, peripherals, health."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from labfleet.db.base import Base, Timestamps
from labfleet.db.models.statuses import BoardStatusChoice


class Board(Timestamps, Base):
    __tablename__ = "boards"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    description: Mapped[str] = mapped_column(default="")
    board_type: Mapped[str] = mapped_column(String(64), index=True)
    architecture: Mapped[str] = mapped_column(String(32), index=True)
    serial_number: Mapped[str] = mapped_column(String(128), unique=True)
    status: Mapped[str] = mapped_column(ForeignKey("board_statuses.value"), index=True, default="online")
    console_url: Mapped[str | None] = mapped_column(String(1024), default=None)
    # SSH into the board itself, when its image runs sshd.
    ssh_address: Mapped[str | None] = mapped_column(String(255), default=None)
    ssh_port: Mapped[int] = mapped_column(default=22)
    ssh_user: Mapped[str | None] = mapped_column(String(64), default=None)
    ssh_secret: Mapped[str | None] = mapped_column(default=None)
    ssh_host_key: Mapped[str | None] = mapped_column(default=None)
    # Power and flash wiring: a driver name and its parameters; credentials sealed apart.
    power_driver: Mapped[str | None] = mapped_column(String(32), default=None)
    power_params: Mapped[dict[str, Any]] = mapped_column(default=dict)
    power_secret: Mapped[str | None] = mapped_column(default=None)
    flash_driver: Mapped[str | None] = mapped_column(String(32), default=None)
    flash_params: Mapped[dict[str, Any]] = mapped_column(default=dict)
    flash_secret: Mapped[str | None] = mapped_column(default=None)
    firmware_version: Mapped[str | None] = mapped_column(String(128), default=None)
    # The last image flashed and verified (booted): what a failed flash is rolled back to.
    known_good_artifact_id: Mapped[int | None] = mapped_column(
        ForeignKey("artifacts.id", ondelete="SET NULL"), default=None
    )

    status_choice: Mapped[BoardStatusChoice] = relationship(lazy="joined")
    labels: Mapped[list[BoardLabel]] = relationship(
        cascade="all, delete-orphan", passive_deletes=True, lazy="raise"
    )
    peripherals: Mapped[list[BoardPeripheral]] = relationship(
        cascade="all, delete-orphan", passive_deletes=True, lazy="raise"
    )
    health: Mapped[BoardHealth | None] = relationship(
        cascade="all, delete-orphan", passive_deletes=True, lazy="raise"
    )


class BoardLabel(Base):
    __tablename__ = "board_labels"

    board_id: Mapped[int] = mapped_column(ForeignKey("boards.id", ondelete="CASCADE"), primary_key=True)
    key: Mapped[str] = mapped_column(String(63), primary_key=True)
    value: Mapped[str] = mapped_column(String(255))

    __table_args__ = (Index(None, "key", "value", "board_id"),)


class BoardPeripheral(Base):
    """Something wired to the board that tests may require: ``usb-ethernet``, ``sd-mux``."""

    __tablename__ = "board_peripherals"

    board_id: Mapped[int] = mapped_column(ForeignKey("boards.id", ondelete="CASCADE"), primary_key=True)
    name: Mapped[str] = mapped_column(String(63), primary_key=True)


class BoardHealth(Base):
    __tablename__ = "board_health"

    board_id: Mapped[int] = mapped_column(ForeignKey("boards.id", ondelete="CASCADE"), primary_key=True)
    reachable: Mapped[bool | None] = mapped_column(default=None)
    temperature_c: Mapped[float | None] = mapped_column(default=None)
    power_state: Mapped[str | None] = mapped_column(String(16), default=None)
    consecutive_failures: Mapped[int] = mapped_column(default=0)
    checked_at: Mapped[datetime | None] = mapped_column(default=None)
    last_error: Mapped[str | None] = mapped_column(Text, default=None)
    # The one automatic power cycle tried since the board last answered (property 13).
    recovery_attempted_at: Mapped[datetime | None] = mapped_column(default=None)
