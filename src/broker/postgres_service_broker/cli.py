"""The ``postgres-service-broker`` command.

postgres-service-broker serve [--config FILE]   the broker (config from FILE or the environment)
postgres-service-broker check-config [--config FILE]
postgres-service-broker dev                      a throwaway cluster and a broker, for trying it out
postgres-service-broker ups create NAME [--json]  a database and role for a user-provided service
postgres-service-broker ups delete NAME           remove what `ups create NAME` made
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import secrets
import shlex
import signal
import sys
from collections.abc import Sequence

import psycopg

from postgres_service_broker import __version__, user_provided
from postgres_service_broker.backends.base import BackendError
from postgres_service_broker.config import ConfigError, load_config, parse_config
from postgres_service_broker.user_provided import DEFAULT_CONNECTION_LIMIT, UpsError

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
    _add_ups_parser(sub)
    return parser


def _add_ups_parser(sub: argparse._SubParsersAction) -> None:
    admin_env = (
        "The admin connection comes only from the libpq environment: PGHOST, PGPORT, PGUSER, "
        "PGPASSWORD (or a .pgpass file), PGDATABASE, PGSSLMODE."
    )
    ups = sub.add_parser(
        "ups",
        help="a database and role on an existing PostgreSQL, for cf create-user-provided-service",
        description="Stage 1: credentials for a user-provided service. " + admin_env,
    )
    actions = ups.add_subparsers(dest="ups_command", required=True, metavar="ACTION")
    create = actions.add_parser(
        "create",
        help="create NAME's database and login role, print the cf command",
        description="Create a database and a login role for NAME, exactly as the broker does for one "
        "instance and one binding, and print the cf create-user-provided-service command. " + admin_env,
    )
    create.add_argument("name", metavar="NAME", help="the service name: lowercase letters, digits, '-'")
    create.add_argument("--json", action="store_true", help="print only the credentials (JSON)")
    create.add_argument(
        "--host",
        action="append",
        metavar="HOST",
        help="the address apps connect to (default: the server PGHOST reached); repeat for several hosts",
    )
    create.add_argument("--port", type=int, help="the port apps connect to (default: the server's port)")
    create.add_argument(
        "--connection-limit",
        type=int,
        default=DEFAULT_CONNECTION_LIMIT,
        metavar="N",
        help=f"at most this many connections to the database, -1 for no limit "
        f"(default {DEFAULT_CONNECTION_LIMIT})",
    )
    delete = actions.add_parser(
        "delete",
        help="remove what 'ups create NAME' made",
        description="Drop NAME's database and roles (ending their sessions). " + admin_env,
    )
    delete.add_argument("name", metavar="NAME")


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


def _ups(args: argparse.Namespace) -> int:
    try:
        return _ups_command(args)
    except psycopg.Error as exc:
        # A server error outside the steps that explain themselves (a lost connection).
        text = str(exc).strip().splitlines()
        raise UpsError(text[0] if text else type(exc).__name__, user_provided.EXIT_FAILED) from None


def _ups_command(args: argparse.Namespace) -> int:
    if args.ups_command == "delete":
        removed, server = user_provided.delete(args.name)
        print(f"deleted {args.name} on {server}: {', '.join(removed)}")
        return 0
    credentials, server = user_provided.create(
        args.name, hosts=args.host, port=args.port, connection_limit=args.connection_limit
    )
    for host in credentials["hosts"]:
        if _is_loopback(host):
            print(
                f"note: apps will be told to connect to {host}, which in an app container is the "
                "container itself; use --host with an address apps can reach",
                file=sys.stderr,
            )
    if args.json:
        print(json.dumps(credentials, indent=2))
        return 0
    print(
        f"created {args.name} on {server}: database {credentials['name']}, login role "
        f"{credentials['username']}; give it to your apps with:",
        file=sys.stderr,
        flush=True,
    )
    print(user_provided.cups_command(args.name, credentials))
    return 0


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _terminate(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    handlers = {"serve": _serve, "check-config": _check_config, "dev": _dev, "ups": _ups}
    try:
        return handlers[args.command](args)
    except UpsError as exc:
        print(f"postgres-service-broker: ups {args.ups_command}: {exc}", file=sys.stderr)
        return exc.exit_code
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
