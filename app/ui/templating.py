"""The dashboard's Jinja2 environment: autoescaped HTML templates from app/ui/templates."""
from pathlib import Path

from fastapi.templating import Jinja2Templates

templates = Jinja2Templates(directory=Path(__file__).parent / "templates")
