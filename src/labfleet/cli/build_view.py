"""How build jobs are shown: status, times, sizes, where a build was placed and why."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from rich.markup import escape

from labfleet.cli import output
from labfleet.schemas.enums import BuildJobStatus

PATH = "/build-jobs"
ACTIVE = (BuildJobStatus.queued, BuildJobStatus.running)


def status_of(item: dict[str, Any], default: Any = None) -> str:
    """The status value of an item of the API (a StatusOut) or of an event (the value alone)."""
    status = item.get("status", default)
    return str(status.get("value") if isinstance(status, dict) else status)


def parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def when(value: Any) -> str | None:
    """A timestamp of the API in local time, to the second."""
    moment = parse_time(value)
    return moment.astimezone().strftime("%Y-%m-%d %H:%M:%S") if moment else None


def duration(seconds: float) -> str:
    seconds = max(int(seconds), 0)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m{secs:02d}s"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"


def short_when(value: Any) -> str | None:
    """A timestamp for a table: the time of day if today, else the date too (local time)."""
    moment = parse_time(value)
    if moment is None:
        return None
    local = moment.astimezone()
    return local.strftime("%H:%M:%S" if local.date() == datetime.now().astimezone().date() else "%m-%d %H:%M")


def eta_of(value: Any, *, short: bool = False) -> str | None:
    """An estimated start: its local time and how far off it is (only that, ``short``)."""
    moment = parse_time(value)
    if moment is None:
        return None
    ahead = (moment - datetime.now(UTC)).total_seconds()
    relative = "now" if ahead < 1 else f"in {duration(ahead)}"
    return relative if short else f"{when(value)} ({relative})"


def human_size(n: int) -> str:
    if n < 1024:
        return f"{n} B"
    if n < 1024 * 1024:
        return f"{n / 1024:.1f} KiB"
    return f"{n / 1024 / 1024:.1f} MiB"


def ref_of(job: dict[str, Any]) -> str:
    commit = job.get("resolved_commit") or job.get("requested_commit")
    parts = [job.get("branch"), commit[:12] if commit else None]
    return " @ ".join(p for p in parts if p) or "-"


def server_of(job: dict[str, Any]) -> str | None:
    if job.get("build_server"):
        return str(job["build_server"])
    return f"#{job['build_server_id']}" if job.get("build_server_id") is not None else None


def explanation_of(job: dict[str, Any]) -> dict[str, Any]:
    decision = job.get("decision") or {}
    explanation = decision.get("explanation") if isinstance(decision, dict) else None
    return explanation if isinstance(explanation, dict) else {}


def placement_lines(job: dict[str, Any]) -> list[str]:
    """Where it was placed and why, in a few lines: the decision's summary, then who was excluded."""
    explanation = explanation_of(job)
    if not explanation:
        return []
    server = server_of(job)
    where = f"placed on [bold]{escape(server)}[/bold]" if server else "not placed yet"
    lines = [f"{where}: {escape(str(explanation.get('summary', explanation.get('outcome', ''))))}"]
    for candidate in explanation.get("candidates", []):
        name = escape(f"{candidate.get('name')} (#{candidate.get('id')})")
        if candidate.get("excluded"):
            reasons = "; ".join(r.get("message", r.get("code", "")) for r in candidate.get("reasons", []))
            lines.append(f"  [yellow]excluded[/yellow] {name}: {escape(reasons)}")
        elif candidate.get("id") != explanation.get("chosen_id"):
            score = (candidate.get("score") or {}).get("total")
            notes = "; ".join(n.get("message", "") for n in candidate.get("notes", []))
            scored = f"score {score:.3f}" if isinstance(score, int | float) else "no score"
            lines.append(
                f"  also eligible {name}: rank {candidate.get('rank')}, {scored}"
                + (f" ({escape(notes)})" if notes else "")
            )
    return lines


def start_line(job: dict[str, Any]) -> str | None:
    status = status_of(job)
    if status == "queued":
        eta = eta_of(job.get("estimated_start_at"))
        return f"estimated start: {eta or 'unknown: no server can take it now'}"
    if status == "running":
        return f"started: {when(job.get('started_at'))} on {escape(server_of(job) or '-')}"
    return None


def print_placed(job: dict[str, Any], verb: str) -> None:
    status = output.cell(job.get("status"))
    output.out.print(
        f"build job [bold]{job['id']}[/bold] {verb}: {escape(job['architecture'])} {escape(ref_of(job))} "
        f"of {escape(job['repository_url'])} — {status}"
    )
    for line in placement_lines(job):
        output.out.print(line)
    start = start_line(job)
    if start:
        output.out.print(start)


def show_decision(job: dict[str, Any]) -> None:
    """The whole placement decision: each candidate, why it was excluded or how it scored."""
    explanation = explanation_of(job)
    if not explanation:
        output.out.print("no placement decision recorded")
        return
    summary = escape(f"{explanation.get('outcome')} — {explanation.get('summary')}")
    output.out.print(f"[bold]placement[/bold]: {summary}")
    for name in ("request", "weights"):
        if explanation.get(name):
            output.out.print(f"  {name}: {escape(output.cell(explanation[name]))}")
    output.out.print("[bold]candidates[/bold] (best first):")
    for c in explanation.get("candidates", []):
        name = escape(f"{c.get('name')} (#{c.get('id')})")
        score = c.get("score") or {}
        if c.get("excluded"):
            reasons = escape("; ".join(r.get("message", "") for r in c.get("reasons", [])))
            output.out.print(f"  - {name}: [red]excluded[/red]: {reasons}")
        else:
            if c.get("id") == explanation.get("chosen_id"):
                verdict = "[green]chosen[/green]" + (
                    ", can start now" if c.get("can_start_now") else ", queued"
                )
            else:
                verdict = "eligible" + (", can start now" if c.get("can_start_now") else "")
            total = score.get("total")
            estimate = c.get("estimated_duration_s")
            facts = [f"score {total:.3f}" if isinstance(total, int | float) else "no score"]
            if isinstance(estimate, int | float):
                facts.append(f"est. duration {duration(estimate)}")
            output.out.print(f"  {c.get('rank') or '-'}. {name}: {verdict}; {', '.join(facts)}")
        for p in score.get("parts", []):
            output.out.print(
                f"      {escape(str(p.get('name'))):<10} {p.get('value', 0):.3f} × {p.get('weight', 0):.3f}"
                f" = {p.get('contribution', 0):.3f}  {escape(str(p.get('detail', '')))}",
                highlight=False,
            )
        for n in c.get("notes", []):
            output.out.print(f"      note: {escape(str(n.get('message', '')))}")


# -- commands
