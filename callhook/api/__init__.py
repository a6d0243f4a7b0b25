"""REST API under /api/v1 (FastAPI), one module per resource."""
