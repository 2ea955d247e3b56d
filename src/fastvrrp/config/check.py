"""`fastvrrp check -f FILE [--json]`: validate a keepalived.conf and summarise it.

Exit 0 with a summary (or the model as JSON); exit 1 with every error as `FILE:LINE: message`.
"""

from __future__ import annotations

import argparse
import json
import sys

from fastvrrp.config.diagnostics import ConfigError
from fastvrrp.config.export import config_to_dict
from fastvrrp.config.loader import load
from fastvrrp.config.summary import summarize


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("-f", "--file", required=True, help="keepalived.conf to check")
    p.add_argument("--json", action="store_true", help="dump the validated model as JSON")
    p.add_argument(
        "-i",
        "--config-id",
        default=None,
        help="config id for '@id' lines (keepalived -i); default: the short host name",
    )


def run(args: argparse.Namespace) -> int:
    try:
        config = load(args.file, config_id=args.config_id)
    except ConfigError as exc:
        for diagnostic in exc.errors:
            print(diagnostic, file=sys.stderr)
        for diagnostic in exc.warnings:
            print(diagnostic, file=sys.stderr)
        print(f"{args.file}: {len(exc.errors)} error(s)", file=sys.stderr)
        return 1
    if args.json:
        json.dump(config_to_dict(config), sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        print(summarize(config, args.file))
    return 0
