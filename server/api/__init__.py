"""REST API v1 routers, collected into `api_router`."""
