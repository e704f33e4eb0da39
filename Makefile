# The two README commands: `make demo` runs the main job, `make test` the whole suite.
.PHONY: venv demo test lint typecheck pytest openapi wheel

VENV := .venv/bin

venv:
	@bash scripts/venv.sh

demo: venv
	$(VENV)/morphml demo

lint: venv
	$(VENV)/ruff check .
	$(VENV)/ruff format --check .

typecheck: venv
	$(VENV)/mypy

pytest: venv
	@bash scripts/ensure-postgres.sh
	$(VENV)/pytest -q

test: lint typecheck pytest

openapi: venv
	$(VENV)/python -m server.openapi > openapi.json

# sdist, then the wheel built from it (never from the working tree's build/: setuptools would ship
# modules deleted since the last build). build/ is ignored by git.
wheel: venv
	rm -rf build/dist
	$(VENV)/python -m build --outdir build/dist
