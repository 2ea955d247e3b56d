"""Command line: fastvrrp check | run | status | demo."""

from __future__ import annotations

import argparse
import sys

from fastvrrp import __version__, accel


def version_text() -> str:
    lines = [f"fastvrrp {__version__} (Python {sys.version.split()[0]})"]
    for name, state in accel.status().items():
        lines.append(f"  {name}: {state}")
    return "\n".join(lines)


class _VersionAction(argparse.Action):
    def __init__(self, option_strings, dest, **kwargs):
        super().__init__(option_strings, dest, nargs=0, help="show version and which implementation is active")

    def __call__(self, parser, namespace, values, option_string=None):
        print(version_text())
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fastvrrp", description=__doc__)
    parser.add_argument("--version", action=_VersionAction)
    sub = parser.add_subparsers(dest="command", required=True)

    from fastvrrp.config import check

    p = sub.add_parser("check", help="validate a keepalived.conf and summarise it")
    check.add_arguments(p)
    p.set_defaults(func=check.run)

    from fastvrrp.daemon import main as daemon_main

    p = sub.add_parser("run", help="run the VRRP daemon in the foreground")
    daemon_main.add_arguments(p)
    p.set_defaults(func=daemon_main.run)

    p = sub.add_parser("status", help="show a running daemon's state and fast-path counters")
    daemon_main.add_status_arguments(p)
    p.set_defaults(func=daemon_main.status)

    from fastvrrp import demo

    p = sub.add_parser("demo", help="two routers and a client in namespaces: election and failover")
    demo.add_arguments(p)
    p.set_defaults(func=demo.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
