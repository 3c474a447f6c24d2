"""The `trainyard` command: running the service, and using it (jobs, datasets, models, studies)."""
from app.cli.base import app
# Importing a module registers its commands; --help lists them in this order.
from app.cli import server, jobs, follow, results, predict, datasets, studies, study_plot, webhooks  # noqa: F401,I001

__all__ = ["app", "main"]


def main() -> None:
    app()
