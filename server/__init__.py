"""The MorphML control plane: a FastAPI app keeping experiments, tasks and leases in a database."""
