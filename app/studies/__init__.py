"""Studies: one request that runs many ordinary training jobs and compares them."""
