"""`fastvrrp check -f FILE`: placeholder until the config language lands."""

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("-f", "--file", required=True, help="keepalived.conf to check")
    p.add_argument("--json", action="store_true", help="dump the validated model as JSON")


def run(args: argparse.Namespace) -> int:
    raise SystemExit("fastvrrp check: not implemented yet")
