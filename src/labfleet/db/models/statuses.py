"""Status enums, each one table of value/label/colour read by the API and the UI."""

from __future__ import annotations

from labfleet.db.base import Base, StatusChoice


class BuildServerStatusChoice(StatusChoice, Base):
    __tablename__ = "build_server_statuses"


class HostStatusChoice(StatusChoice, Base):
    __tablename__ = "host_statuses"


class BoardStatusChoice(StatusChoice, Base):
    __tablename__ = "board_statuses"


class BuildJobStatusChoice(StatusChoice, Base):
    __tablename__ = "build_job_statuses"
