"""``auditor dashboard``: serve the compliance dashboard on this machine.

auditor dashboard --db PATH [--host 127.0.0.1] [--port 8765] [--token TOKEN]
                  [--allow-remote] [--secure-cookies]

The token comes from ``--token``, else ``$AUDITOR_DASHBOARD_TOKEN``, else it is random
and printed once at start with a sign-in link. A configured token is never printed.
Binding to anything but a loopback address needs ``--allow-remote``: the dashboard
speaks plain HTTP, so anything else belongs behind a TLS proxy (then add
``--secure-cookies``).
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
import os
import sys
from pathlib import Path

from auditor.errors import ConfigurationError, InputError
from dashboards.cli import add_db_option

TOKEN_ENV = "AUDITOR_DASHBOARD_TOKEN"  # noqa: S105 - the variable's name, not a token
DEFAULT_PORT = 8765


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``auditor dashboard``."""
    add_db_option(parser)
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"default {DEFAULT_PORT}")
    parser.add_argument(
        "--token",
        help=f"the access token (default ${TOKEN_ENV}, else a random one printed at start)",
    )
    parser.add_argument(
        "--allow-remote",
        action="store_true",
        help="allow binding to a non-loopback address (put a TLS proxy in front)",
    )
    parser.add_argument(
        "--allowed-host",
        action="append",
        default=[],
        metavar="HOST[:PORT]",
        help="a name clients use to reach a remote bind (repeatable; Host header check)",
    )
    parser.add_argument(
        "--secure-cookies", action="store_true", help="mark the session cookie Secure (TLS proxy)"
    )
    parser.add_argument(
        "--sla-days", type=int, default=7, metavar="N", help="review deadline (default 7 days)"
    )


def is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine only (``localhost`` or a loopback address)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def allowed_hosts(host: str, port: int, extra: list[str], *, remote: bool) -> frozenset[str] | None:
    """The Host header values the server answers to; ``None`` accepts any."""
    names = {f"{h}:{port}" for h in ("127.0.0.1", "localhost", "[::1]")}
    names.add(f"{host.lower()}:{port}")
    names.update(e.lower() if ":" in e.strip("[]") else f"{e.lower()}:{port}" for e in extra)
    if remote and not extra and host in ("0.0.0.0", "::"):  # noqa: S104 - checking, not binding
        return None
    return frozenset(names)


def run(args: argparse.Namespace) -> int:
    """Serve until interrupted."""
    import uvicorn

    from dashboards.web import DashboardConfig, create_app, generate_token

    if not is_loopback(args.host) and not args.allow_remote:
        raise ConfigurationError(
            f"refusing to bind to {args.host}: the dashboard serves findings over plain HTTP; "
            "use --allow-remote behind a TLS proxy"
        )
    if not 0 < args.port < 65536:  # noqa: PLR2004 - the TCP port range
        raise ConfigurationError("--port must be between 1 and 65535")
    db = Path(args.db)
    if not db.is_file():
        raise InputError(f"no audit database at {db}")
    token = args.token or os.environ.get(TOKEN_ENV) or None
    printed = token is None
    token = token or generate_token()
    config = DashboardConfig(
        db_path=db,
        token=token,
        allowed_hosts=allowed_hosts(
            args.host, args.port, args.allowed_host, remote=args.allow_remote
        ),
        secure_cookies=args.secure_cookies,
        sla_days=args.sla_days,
    )
    app = create_app(config)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
    access = logging.getLogger("dashboards.access")
    access.addHandler(handler)
    access.setLevel(logging.INFO)
    access.propagate = False
    shown = f"[{args.host}]" if ":" in args.host else args.host
    base = f"http://{shown}:{args.port}"
    sys.stdout.write(f"auditor dashboard: serving {db} at {base}/\n")
    if printed:
        sys.stdout.write(
            f"auditor dashboard: access token {token}\n"
            f"auditor dashboard: sign in at {base}/login?token={token}\n"
        )
    else:
        sys.stdout.write("auditor dashboard: using the configured access token\n")
    sys.stdout.flush()
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host=args.host,
            port=args.port,
            access_log=False,  # ours (dashboards.access) never logs query strings
            log_level="warning",
            server_header=False,
            proxy_headers=False,
            lifespan="off",
        )
    )
    server.run()
    return 0
