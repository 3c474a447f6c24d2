"""The Typer app, the console, and how a command finds its server and key."""
import os
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

app = typer.Typer(help="Trainyard: training as a service.", no_args_is_help=True)
console = Console()
errors = Console(stderr=True)

DEFAULT_URL = "http://127.0.0.1:8000"

Url = Annotated[str | None, typer.Option(
    "--url", envvar="TRAINYARD_URL", show_default=False,
    help=f"API address (else the config file's url, else {DEFAULT_URL})")]
ApiKey = Annotated[str | None, typer.Option(
    "--api-key", envvar="TRAINYARD_API_KEY", show_default=False,
    help="API key (else the config file's api_key)")]


def config_path() -> Path:
    """TRAINYARD_CONFIG, else $XDG_CONFIG_HOME/trainyard/config.toml (~/.config/...)."""
    if os.environ.get("TRAINYARD_CONFIG"):
        return Path(os.environ["TRAINYARD_CONFIG"])
    base = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return base / "trainyard" / "config.toml"


def read_config() -> dict:
    """url and api_key from the config file; {} when there is none."""
    path = config_path()
    if not path.exists():
        return {}
    try:
        return tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        errors.print(f"[red]error:[/] {path} is not valid TOML: {exc}")
        raise typer.Exit(2)


def connect(url: str | None, api_key: str | None):
    """A Client for the first of: the flag, the environment, the config file, the default."""
    from app.client import Client

    config = read_config()
    key = api_key or config.get("api_key")
    if not key:
        errors.print("[red]error:[/] no API key: pass --api-key, set TRAINYARD_API_KEY, or put "
                     f"api_key = \"ty_...\" in {config_path()}")
        raise typer.Exit(2)
    return Client(url or config.get("url") or DEFAULT_URL, key)


@contextmanager
def reported() -> Iterator[None]:
    """Turns a refused request into a one-line error (and its field errors) and exit code 1."""
    from app.client import ServerUnreachable, TrainyardError

    try:
        yield
    except ServerUnreachable as exc:
        errors.print(f"[red]error:[/] cannot reach the server ({exc.request}): {escape(exc.detail)}")
        raise typer.Exit(1)
    except TrainyardError as exc:
        # Server text is printed as it is: "[n, 4]" is a shape, not a rich style.
        errors.print(f"[red]error:[/] {exc.status} {escape(str(exc.detail))}")
        for e in exc.errors:
            if e.get("field") and e.get("message") not in exc.detail:
                errors.print(escape(f"  {e['field']}: {e['message']}"))
        raise typer.Exit(1)
