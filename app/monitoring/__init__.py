"""GET /metrics: the API's own request metrics, and the service's read from the database at scrape time."""
