"""The web dashboard, served by the API itself: Jinja2 pages, a little vanilla JS, and the
third-party browser assets it needs vendored under static/vendor/ (no CDN, nothing built at
install time), so every page, /docs and /redoc included, works without the internet."""
