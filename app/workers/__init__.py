"""The worker registry (GET /v1/workers) and the routing of jobs to GPU or CPU workers."""
