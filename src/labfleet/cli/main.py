"""``labfleet``: the command line."""

from __future__ import annotations

import logging
from typing import Annotated

import typer

from labfleet.cli import (
    admin,
    alerts,
    artifacts,
    audit,
    builds,
    client,
    envs,
    health,
    lab,
    notifications,
    pipelines,
    reservations,
    resources,
)
from labfleet.cli import settings as lab_settings
from labfleet.config import Settings

app = typer.Typer(help="labfleet: the control plane for embedded and kernel test labs.", no_args_is_help=True)
app.add_typer(resources.build_servers, name="build-servers")
app.add_typer(resources.hosts, name="hosts")
app.add_typer(resources.boards, name="boards")
app.add_typer(builds.app, name="builds")
app.add_typer(reservations.app, name="reservations")
app.add_typer(alerts.app, name="alerts")
app.add_typer(notifications.app, name="notifications")
app.add_typer(health.app, name="health")
app.add_typer(artifacts.app, name="artifacts")
app.add_typer(audit.app, name="audit")
app.add_typer(lab_settings.app, name="settings")
app.add_typer(pipelines.app, name="pipelines")
app.add_typer(envs.app, name="envs")
app.add_typer(admin.token_app, name="token")
app.add_typer(admin.db_app, name="db")
app.add_typer(lab.app, name="lab")


@app.callback()
def main(
    ctx: typer.Context,
    url: Annotated[str | None, typer.Option(help="labfleet server URL (or LABFLEET_URL).")] = None,
    token: Annotated[str | None, typer.Option(help="API token (or LABFLEET_TOKEN).")] = None,
) -> None:
    ctx.obj = client.resolve(url, token)


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Address to listen on.")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on.")] = None,
) -> None:
    """Serve the API: migrate the database, then listen."""
    import uvicorn

    from labfleet.api.app import create_app

    overrides = {k: v for k, v in {"host": host, "port": port}.items() if v is not None}
    settings = Settings(**overrides)  # type: ignore[arg-type]
    first_token = admin.prepare(settings)
    if first_token:
        client.err.print(
            "[bold]First start: an admin token was created. It is shown only now; keep it.[/bold]"
        )
        print(f"LABFLEET_TOKEN={first_token}", flush=True)
    # labfleet's own loggers, at the level uvicorn's are: what the workers did, and why.
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level=settings.log_level)


if __name__ == "__main__":
    app()
