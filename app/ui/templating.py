"""The dashboard's one Jinja2 environment (app/ui/templates/), with ``static_url(path)`` in every template.

Templates are rendered under the Content-Security-Policy of app/ui/headers.py: no inline
<script> or on* attribute, no <style> or style= attribute; scripts and styles are files
under app/ui/static/, named with static_url()."""
from pathlib import Path

import jinja2
from fastapi.templating import Jinja2Templates

from app.ui.static import static_url

TEMPLATES_DIR = Path(__file__).parent / "templates"


@jinja2.pass_context
def _static_url(context: dict, path: str) -> str:
    return static_url(context["request"], path)


templates = Jinja2Templates(directory=TEMPLATES_DIR)
templates.env.globals["static_url"] = _static_url
