"""Trainyard's Celery worker: claims jobs and trains them."""
