"""The dashboard's pages. Each is a server-rendered frame (app/ui/templates/) whose script
(app/ui/static/js/) reads the API with the session cookie and updates from the SSE streams;
the tenant checks are the API's own. A page asked for without a session goes to /signin."""
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from app.ui.signin import PageSession
from app.ui.templating import templates

router = APIRouter(include_in_schema=False, default_response_class=HTMLResponse)


def page(request: Request, session, template: str, nav: str, **context):
    return templates.TemplateResponse(request, template, {"session": session, "nav": nav, **context})


@router.get("/")
def jobs(request: Request, session: PageSession):
    return page(request, session, "jobs.html", "jobs")


@router.get("/jobs/{job_id}")
def job(request: Request, session: PageSession, job_id: str):
    return page(request, session, "job.html", "jobs", job_id=job_id)


@router.get("/compare")
def compare(request: Request, session: PageSession):
    return page(request, session, "compare.html", "compare")


@router.get("/studies")
def studies(request: Request, session: PageSession):
    return page(request, session, "studies.html", "studies")


@router.get("/studies/{study_id}")
def study(request: Request, session: PageSession, study_id: str):
    return page(request, session, "study.html", "studies", study_id=study_id)


@router.get("/datasets")
def datasets(request: Request, session: PageSession):
    return page(request, session, "datasets.html", "datasets")


@router.get("/submit")
def submit(request: Request, session: PageSession):
    return page(request, session, "submit.html", "submit")
