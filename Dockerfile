# One image for the API, the worker and migrations; docker-compose.yml picks the command.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 DATA_DIR=/data
WORKDIR /srv/trainyard

COPY pyproject.toml README.md alembic.ini ./
COPY app ./app
COPY worker ./worker
COPY migrations ./migrations
# Editable: `trainyard migrate` reads alembic.ini and migrations/ beside the app package
# (app/migrate.py), which a plain install would leave behind in this folder.
RUN pip install --no-cache-dir -e .

EXPOSE 8000
CMD ["trainyard", "api", "--host", "0.0.0.0", "--port", "8000"]
