"""The dashboard's files (app/ui/static/) at /ui/static, and the one way a template names one."""
from pathlib import Path

from fastapi import FastAPI, Request
from starlette.staticfiles import StaticFiles

STATIC_DIR = Path(__file__).parent / "static"
STATIC_PREFIX = "/ui/static"


def install_static(app: FastAPI) -> None:
    app.mount(STATIC_PREFIX, StaticFiles(directory=STATIC_DIR), name="ui-static")


def static_url(request: Request, path: str) -> str:
    """The URL path of app/ui/static/<path>: root-relative, so it is same-origin under any
    host or scheme a proxy answers for (url_for would spell out the scheme and host it saw)."""
    return f"{request.scope.get('root_path', '')}{STATIC_PREFIX}/{path.lstrip('/')}"
