"""Resumable uploads: a large file sent in parts (S3-style multipart), then ingested as one dataset."""
