"""``ecglens serve``: the web page for a phone photo (argparse only; heavy imports inside)."""

from __future__ import annotations

import argparse
import ipaddress
import logging

log = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
"""Loopback only by default: the page has no login and no TLS."""
DEFAULT_PORT = 8000


def _port(text: str) -> int:
    """A TCP port, 1-65535."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"expected a port number 1-65535, got {text!r}")
    return value


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``serve`` to the ``ecglens`` parser."""
    p = subparsers.add_parser(
        "serve", help="web page: read a phone photo, scan or PDF of a paper ECG",
        description="Serve one web page: upload or take a photo of a paper ECG, see the traces as "
        "read, zoom a lead, read the findings (intervals, ST, STEMI statement with its rules, "
        "class probabilities) and download WFDB/CSV/JSON/PDF. Nothing is kept on the server "
        "after an answer. No login and no TLS: keep the default host (this computer only) "
        "unless the network is trusted.")
    p.add_argument("--host", default=DEFAULT_HOST,
                   help=f"address to listen on (default {DEFAULT_HOST}; 0.0.0.0 lets a phone on "
                   "the same network connect)")
    p.add_argument("--port", type=_port, default=DEFAULT_PORT,
                   help=f"port (default {DEFAULT_PORT})")
    p.set_defaults(func=run_serve)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def run_serve(args: argparse.Namespace) -> int:
    """Run the server until Ctrl-C."""
    import uvicorn

    from ecglens.app.serve import create_app

    if not _is_loopback(args.host):
        log.warning("listening on %s: anyone who can reach this address can use the page "
                    "(no login, no TLS)", args.host)
    shown = "localhost" if _is_loopback(args.host) else args.host
    print(f"ecglens serve: open http://{shown}:{args.port}/ (Ctrl-C to stop)", flush=True)
    uvicorn.run(create_app(), host=args.host, port=args.port, log_level="warning",
                server_header=False)
    return 0
