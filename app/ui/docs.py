"""GET /docs (Swagger UI) and GET /redoc from the vendored bundles: no CDN, so both work offline.

FastAPI's own pages (get_swagger_ui_html) load the bundles from a CDN and start Swagger UI
with an inline script, which the Content-Security-Policy forbids; here the page is a
template and app/ui/static/js/swagger-init.js starts it, reading the document's URL from
the page. create_app turns FastAPI's docs_url and redoc_url off.
"""
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from app.ui.templating import templates

router = APIRouter(include_in_schema=False)


def _openapi_url(request: Request) -> str:
    return f"{request.scope.get('root_path', '')}{request.app.openapi_url}"


@router.get("/docs", response_class=HTMLResponse)
def swagger_ui(request: Request) -> HTMLResponse:
    return templates.TemplateResponse(request, "docs.html", {"title": request.app.title,
                                                             "openapi_url": _openapi_url(request)})


@router.get("/redoc", response_class=HTMLResponse)
def redoc(request: Request) -> HTMLResponse:
    return templates.TemplateResponse(request, "redoc.html", {"title": request.app.title,
                                                              "openapi_url": _openapi_url(request)})
