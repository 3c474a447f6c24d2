"""The pure ML core: spec -> torch objects. Imports torch and pydantic only."""
