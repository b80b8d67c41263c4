"""Entry point of the ``accord`` console script.

``accord exec`` runs on every cron tick, so it is dispatched before anything heavy is
imported: it only needs the standard library.
"""

from __future__ import annotations

import sys

__all__ = ["main"]


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if args and args[0] == "exec":
        from adapters.cron.wrapper import main as exec_main

        raise SystemExit(exec_main(args[1:]))
    from .app import app

    app(args=args, prog_name="accord")
