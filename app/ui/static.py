"""The dashboard's files (app/ui/static/) at /ui/static, and the one way a template names one."""
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse
from starlette.staticfiles import StaticFiles

STATIC_DIR = Path(__file__).parent / "static"
STATIC_PREFIX = "/ui/static"


def install_static(app: FastAPI) -> None:
    app.mount(STATIC_PREFIX, StaticFiles(directory=STATIC_DIR), name="ui-static")
    # Browsers ask for /favicon.ico on every page that names no icon; a 404 there is a console error.
    app.add_api_route("/favicon.ico", favicon, methods=["GET"], include_in_schema=False)


def favicon() -> FileResponse:
    return FileResponse(STATIC_DIR / "favicon.svg", media_type="image/svg+xml")


def static_url(request: Request, path: str) -> str:
    """The URL path of app/ui/static/<path>: root-relative, so it is same-origin under any
    host or scheme a proxy answers for (url_for would spell out the scheme and host it saw)."""
    return f"{request.scope.get('root_path', '')}{STATIC_PREFIX}/{path.lstrip('/')}"
