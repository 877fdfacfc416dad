"""The ``postgres-service-broker`` command.

postgres-service-broker serve [--config FILE]   the broker (config from FILE or the environment)
postgres-service-broker check-config [--config FILE]
postgres-service-broker dev                      a throwaway cluster and a broker, for trying it out
"""

from __future__ import annotations

import argparse
import os
import secrets
import shlex
import signal
import sys
from collections.abc import Sequence

from postgres_service_broker import __version__
from postgres_service_broker.backends.base import BackendError
from postgres_service_broker.config import ConfigError, load_config, parse_config

EXIT_USAGE = 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="postgres-service-broker",
        description="PostgreSQL for Cloud Foundry: an Open Service Broker (API v2.17).",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = sub.add_parser("serve", help="run the broker")
    serve.add_argument(
        "--config",
        help="YAML configuration file (default: $BROKER_CONFIG, else environment variables)",
    )
    check = sub.add_parser("check-config", help="validate the configuration and exit")
    check.add_argument("--config", help="YAML configuration file (default as for serve)")

    sub.add_parser(
        "dev",
        help="start a throwaway PostgreSQL cluster and a broker on 127.0.0.1:$PORT (default 8080)",
    )
    return parser


def _serve(args: argparse.Namespace) -> int:
    from postgres_service_broker.server import configure_logging, serve

    config = load_config(args.config, os.environ)
    configure_logging(config.log_level)
    serve(config)
    return 0


def _check_config(args: argparse.Namespace) -> int:
    load_config(args.config, os.environ)
    print("configuration is valid")
    return 0


def _dev(_args: argparse.Namespace) -> int:
    from postgres_service_broker.local_cluster import LocalCluster
    from postgres_service_broker.server import configure_logging, serve

    username = os.environ.get("BROKER_USERNAME") or "broker"
    password = os.environ.get("BROKER_PASSWORD")
    generated = password is None
    password = password or secrets.token_urlsafe(18)
    port = int(os.environ.get("PORT", "8080"))
    configure_logging(os.environ.get("BROKER_LOG_LEVEL", "INFO").upper())
    # SIGTERM must clean up like Ctrl-C does, even before the server is up.
    signal.signal(signal.SIGTERM, _terminate)

    cluster = LocalCluster.create(prefix="pgsvc-dev-", settings={"max_connections": "200"})
    try:
        cluster.start()
        config = parse_config(
            {
                "auth": [{"username": username, "password": password}],
                "encryption_key": secrets.token_urlsafe(32),
                "listen": {"host": "127.0.0.1", "port": port},
                "database": {
                    "host": "127.0.0.1",
                    "port": cluster.port,
                    "user": cluster.superuser,
                    "password": cluster.password,
                    "sslmode": "disable",
                },
            }
        )
        print(
            f"PostgreSQL {cluster.bin.parent.name} running on 127.0.0.1:{cluster.port} "
            f"(data in {cluster.data_dir}, removed on exit)"
        )
        if generated:
            print(f"broker credentials (generated): {username} / {password}")
        else:
            print(f"broker credentials: {username} / (from BROKER_PASSWORD)")
        user_arg = shlex.quote(f"{username}:{password}" if generated else f"{username}:$BROKER_PASSWORD")
        if not generated:
            user_arg = f'"{username}:$BROKER_PASSWORD"'
        serve(
            config,
            on_ready=(
                "broker ready; try:\n  curl -s -u "
                + user_arg.replace("{", "{{").replace("}", "}}")
                + " -H 'X-Broker-API-Version: 2.17' http://127.0.0.1:{port}/v2/catalog\n"
                "Ctrl-C stops the broker and removes the cluster."
            ),
        )
    finally:
        cluster.destroy()
    return 0


def _terminate(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    handlers = {"serve": _serve, "check-config": _check_config, "dev": _dev}
    try:
        return handlers[args.command](args)
    except ConfigError as exc:
        print(f"postgres-service-broker: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except BackendError as exc:
        print(f"postgres-service-broker: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
