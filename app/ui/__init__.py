"""The web dashboard, served by the API: sign-in sessions, pages (Jinja2), static assets."""
