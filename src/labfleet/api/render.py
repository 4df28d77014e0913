"""Rows as the API shows them: ``id``, ``url``, ``display`` first, secrets never."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from labfleet.db.models import Artifact, Board, BuildJob, BuildServer, Host, Reservation
from labfleet.db.models.tokens import ApiToken
from labfleet.schemas.artifacts import ArtifactOut, ArtifactType
from labfleet.schemas.boards import BoardHealthOut, BoardOut, BoardSshOut, WiringOut
from labfleet.schemas.build_servers import BuildServerOut, ToolchainOut
from labfleet.schemas.builds import BuildJobOut
from labfleet.schemas.common import StatusOut
from labfleet.schemas.enums import BuildJobStatus
from labfleet.schemas.hosts import HostOut
from labfleet.schemas.reservations import ReservationOut
from labfleet.schemas.ssh import SshOut
from labfleet.schemas.tokens import TokenOut


def _status(choice: Any) -> StatusOut:
    return StatusOut(value=choice.value, label=choice.label, colour=choice.colour)


def _ssh(obj: BuildServer | Host) -> SshOut:
    return SshOut(
        port=obj.ssh_port,
        username=obj.ssh_user,
        credentials_set=obj.ssh_secret is not None,
        host_key=obj.ssh_host_key,
    )


def build_server(s: BuildServer, base: str) -> BuildServerOut:
    return BuildServerOut(
        id=s.id,
        url=f"{base}/build-servers/{s.id}",
        display=s.hostname,
        hostname=s.hostname,
        address=s.address,
        ssh=_ssh(s),
        description=s.description,
        status=_status(s.status_choice),
        max_concurrent_builds=s.max_concurrent_builds,
        cpu_cores=s.cpu_cores,
        memory_mb=s.memory_mb,
        disk_total_gb=s.disk_total_gb,
        disk_free_gb=s.disk_free_gb,
        load_1m=s.load_1m,
        toolchains=[ToolchainOut.model_validate(t, from_attributes=True) for t in s.toolchains],
        labels={label.key: label.value for label in s.labels},
        checked_at=s.checked_at,
        active_builds=s.active_builds,
        queued_builds=s.queued_builds,
        check_failures=s.check_failures,
        last_check_error=s.last_check_error,
        created_at=s.created_at,
        updated_at=s.updated_at,
    )


def host(h: Host, base: str) -> HostOut:
    return HostOut(
        id=h.id,
        url=f"{base}/hosts/{h.id}",
        display=h.hostname,
        hostname=h.hostname,
        address=h.address,
        ssh=_ssh(h),
        libvirt_uri=h.libvirt_uri,
        description=h.description,
        status=_status(h.status_choice),
        utilization_threshold_pct=h.utilization_threshold_pct,
        cpu_cores=h.cpu_cores,
        memory_mb=h.memory_mb,
        storage_gb=h.storage_gb,
        kvm=h.kvm,
        native_architecture=h.native_architecture,
        architectures=sorted(h.machine_types),
        machine_types=h.machine_types,
        labels={label.key: label.value for label in h.labels},
        checked_at=h.checked_at,
        created_at=h.created_at,
        updated_at=h.updated_at,
    )


def _wiring(driver: str | None, params: dict[str, Any], secret: str | None) -> WiringOut | None:
    if driver is None:
        return None
    return WiringOut(driver=driver, params=params, secret_set=secret is not None)


def board(b: Board, base: str) -> BoardOut:
    health = b.health
    return BoardOut(
        id=b.id,
        url=f"{base}/boards/{b.id}",
        display=b.name,
        name=b.name,
        board_type=b.board_type,
        architecture=b.architecture,
        serial_number=b.serial_number,
        status=_status(b.status_choice),
        console_url=b.console_url,
        ssh=None
        if b.ssh_address is None
        else BoardSshOut(
            address=b.ssh_address,
            port=b.ssh_port,
            username=b.ssh_user,
            credentials_set=b.ssh_secret is not None,
            host_key=b.ssh_host_key,
        ),
        power=_wiring(b.power_driver, b.power_params, b.power_secret),
        flash=_wiring(b.flash_driver, b.flash_params, b.flash_secret),
        peripherals=sorted(p.name for p in b.peripherals),
        firmware_version=b.firmware_version,
        health=None
        if health is None
        else BoardHealthOut(
            reachable=health.reachable,
            temperature_c=health.temperature_c,
            power_state=health.power_state,
            consecutive_failures=health.consecutive_failures,
            checked_at=health.checked_at,
        ),
        description=b.description,
        labels={label.key: label.value for label in b.labels},
        created_at=b.created_at,
        updated_at=b.updated_at,
    )


def token(t: ApiToken) -> TokenOut:
    return TokenOut(
        id=t.id,
        name=t.name,
        role=t.role,
        team=t.team,
        prefix=t.prefix,
        created_at=t.created_at,
        created_by=t.created_by,
        expires_at=t.expires_at,
        last_used_at=t.last_used_at,
        revoked_at=t.revoked_at,
    )


def artifact(a: Artifact, base: str) -> ArtifactOut:
    url = f"{base}/artifacts/{a.id}"
    return ArtifactOut(
        id=a.id,
        url=url,
        display=a.name,
        name=a.name,
        type=ArtifactType(a.type),
        sha256=a.sha256,
        size=a.size,
        build_job_id=a.build_job_id,
        repository_url=a.repository_url,
        branch=a.branch,
        commit=a.commit,
        architecture=a.architecture,
        pinned=a.pinned,
        created_at=a.created_at,
        download_url=f"{url}/download",
    )


def build_job(
    j: BuildJob,
    base: str,
    *,
    servers: dict[int, str],
    estimated_start: datetime | None = None,
    explain: bool = False,
) -> BuildJobOut:
    ref = j.branch or (j.requested_commit or "")[:12]
    return BuildJobOut(
        id=j.id,
        url=f"{base}/build-jobs/{j.id}",
        display=f"#{j.id} {j.architecture} {ref}",
        repository_url=j.repository_url,
        branch=j.branch,
        requested_commit=j.requested_commit,
        resolved_commit=j.resolved_commit,
        architecture=j.architecture,
        command=j.command,
        defconfig=j.defconfig,
        make_target=j.make_target,
        artifact_specs=j.artifact_specs,
        server_choice=j.server_choice,
        build_server_id=j.build_server_id,
        build_server=servers.get(j.build_server_id) if j.build_server_id is not None else None,
        priority=j.priority,
        status=StatusOut.of(BuildJobStatus(j.status)),
        attempt=j.attempt,
        retry_of_id=j.retry_of_id,
        submitted_by=j.submitted_by,
        team=j.team,
        timeout_s=j.timeout_s,
        queued_at=j.queued_at,
        started_at=j.started_at,
        finished_at=j.finished_at,
        estimated_start_at=estimated_start,
        failure_reason=j.failure_reason,
        cancel_requested_at=j.cancel_requested_at,
        log_size=j.log_size,
        logs_url=f"{base}/build-jobs/{j.id}/logs",
        decision=j.decision if explain else None,
    )


def reservation(r: Reservation, base: str, *, explain: bool = False) -> ReservationOut:
    decision = r.decision
    what = f"host {r.host_id}" if r.host_id is not None else f"board {r.board_id}"
    return ReservationOut(
        id=r.id,
        url=f"{base}/reservations/{r.id}",
        display=f"#{r.id} {what} for {r.owner}",
        host_id=r.host_id,
        board_id=r.board_id,
        owner=r.owner,
        team=r.team,
        purpose=r.purpose,
        vcpus=r.vcpus,
        memory_mb=r.memory_mb,
        disk_gb=r.disk_gb,
        created_at=r.created_at,
        expires_at=r.expires_at,
        released_at=r.released_at,
        release_reason=r.release_reason,
        active=r.released_at is None and r.expires_at > datetime.now(r.expires_at.tzinfo),
        auto=None if decision is None else ("host" if r.host_id is not None else "board"),
        warnings=list(decision.get("warnings", [])) if decision else [],
        decision=decision if explain else None,
    )
