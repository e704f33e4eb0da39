"""`morphml-server`: serve the control plane, apply migrations, or mint an API token."""

from __future__ import annotations

import argparse
import logging
import secrets
import sys

import uvicorn
from pydantic import ValidationError

from server.config import Settings, is_loopback
from server.db import make_engine
from server.main import create_app
from server.migrations import upgrade_to_head

log = logging.getLogger("morphml.server")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="morphml-server", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the HTTP server (migrates the database first)")
    serve.add_argument("--host", help="bind address (default MORPHML_HOST or 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default MORPHML_PORT or 8000)")
    serve.add_argument(
        "--database-url", help="default MORPHML_DATABASE_URL or sqlite:///morphml.db"
    )
    serve.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    migrate = commands.add_parser("migrate", help="apply database migrations and exit")
    migrate.add_argument(
        "--database-url", help="default MORPHML_DATABASE_URL or sqlite:///morphml.db"
    )
    commands.add_parser(
        "token", help="print a fresh random token for MORPHML_ADMIN_TOKEN / MORPHML_WORKER_TOKEN"
    )
    return parser


def _settings(args: argparse.Namespace) -> Settings:
    overrides = {
        key: value
        for key, value in (
            ("host", getattr(args, "host", None)),
            ("port", getattr(args, "port", None)),
            ("database_url", getattr(args, "database_url", None)),
        )
        if value is not None
    }
    return Settings(**overrides)


def serve(settings: Settings, log_level: str) -> int:
    """Refuse a non-loopback bind without tokens; say so when auth is off."""
    if not settings.auth_enabled:
        if not is_loopback(settings.host):
            log.error(
                "refusing to listen on %s without MORPHML_ADMIN_TOKEN / MORPHML_WORKER_TOKEN",
                settings.host,
            )
            return 2
        log.warning(
            "no tokens configured: authentication is OFF, listening on loopback %s only",
            settings.host,
        )
    app = create_app(settings)
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_level=log_level,
        timeout_graceful_shutdown=5,
    )
    return 0


def migrate(settings: Settings) -> int:
    engine = make_engine(settings.database_url, busy_timeout_ms=settings.sqlite_busy_timeout_ms)
    upgrade_to_head(engine)
    engine.dispose()
    log.info("database at head: %s", engine.url.render_as_string(hide_password=True))
    return 0


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    args = _parser().parse_args(argv)
    if args.command == "token":
        print(secrets.token_urlsafe(32))
        sys.exit(0)
    try:
        settings = _settings(args)
    except ValidationError as exc:
        # One line a problem, without the input: a token list may hold real tokens.
        for error in exc.errors(include_input=False, include_url=False):
            name = "MORPHML_" + "_".join(str(part) for part in error["loc"]).upper()
            print(f"morphml-server: {name}: {error['msg']}", file=sys.stderr)
        sys.exit(2)
    sys.exit(serve(settings, args.log_level) if args.command == "serve" else migrate(settings))


if __name__ == "__main__":
    main()
