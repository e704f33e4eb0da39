"""What pyproject.toml cannot say: a wheel carries the top-level alembic/ as server/alembic/.

The migrations stay at the repository root, as the design lays it out (`alembic.ini` and the
developers' `alembic revision` use them there); a wheel ships them inside the server package, so
an installed server can create its schema. server/migrations.py looks in both places. The packages
are still found, not listed (as pyproject.toml's `packages.find` did): a new subpackage cannot
be left out of the wheel by mistake.
"""

from setuptools import find_namespace_packages, setup

MIGRATIONS = "server.alembic"
TOP_LEVEL = ("morphml", "server", "worker")

setup(
    packages=[
        *find_namespace_packages(include=[*TOP_LEVEL, *(f"{name}.*" for name in TOP_LEVEL)]),
        MIGRATIONS,
        f"{MIGRATIONS}.versions",
    ],
    package_dir={MIGRATIONS: "alembic"},
    # The dashboard's pages, scripts and styles (server/ui/static) ship with the server.
    package_data={MIGRATIONS: ["script.py.mako"], "server.ui": ["static/*"]},
)
