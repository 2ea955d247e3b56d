"""`fastvrrp run`: the daemon process — logging, pid file, signals, systemd readiness."""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import logging.handlers
import os
import signal
import socket
import sys

from fastvrrp import __version__, accel
from fastvrrp.config import ConfigError, load
from fastvrrp.daemon.instances import StartupError

log = logging.getLogger("fastvrrp")
DEFAULT_CONTROL = "/run/fastvrrp.sock"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("-f", "--file", default="/etc/keepalived/keepalived.conf",
                   help="keepalived.conf to run (default: %(default)s)")
    p.add_argument("-i", "--config-id", default=None, help="config id for @conditional lines")
    p.add_argument("--pid-file", default=None, help="write the daemon's pid here")
    p.add_argument("--control", default=DEFAULT_CONTROL,
                   help="unix socket answering `fastvrrp status` (default: %(default)s; '' for none)")
    p.add_argument("--log", choices=("stderr", "syslog"), default="stderr")
    p.add_argument("-D", "--log-detail", action="store_true", help="debug logging")


def _setup_logging(args: argparse.Namespace) -> None:
    if args.log == "syslog":
        handler: logging.Handler = logging.handlers.SysLogHandler(
            address="/dev/log", facility=logging.handlers.SysLogHandler.LOG_DAEMON)
        handler.setFormatter(logging.Formatter("fastvrrp[%(process)d]: %(message)s"))
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s.%(msecs)03d %(levelname)s %(message)s",
                                               "%Y-%m-%d %H:%M:%S"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if args.log_detail else logging.INFO)


def sd_notify(message: str) -> None:
    """systemd's readiness protocol (Type=notify): one datagram to $NOTIFY_SOCKET."""
    path = os.environ.get("NOTIFY_SOCKET")
    if not path:
        return
    if path.startswith("@"):
        path = "\0" + path[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as s:
        s.connect(path)
        s.sendall(message.encode())


def run(args: argparse.Namespace) -> int:
    _setup_logging(args)
    log.info("fastvrrp %s starting; %s", __version__,
             ", ".join(f"{k} {v}" for k, v in accel.status().items()))
    if not accel.all_compiled():
        log.warning("running the slow pure-Python fallback for some modules (see above)")
    try:
        config = load(args.file, config_id=args.config_id)
    except ConfigError as exc:
        for message in exc.messages:
            log.error("%s", message)
        return 1
    for w in config.warnings:
        log.warning("%s", w)

    import uvloop

    from fastvrrp.daemon.service import Service

    loop = uvloop.new_event_loop()
    asyncio.set_event_loop(loop)
    service = Service(config, loop, control_path=args.control or None,
                      reload_config=lambda: load(args.file, config_id=args.config_id))
    try:
        service.open()
    except (StartupError, OSError) as exc:
        log.error("cannot start: %s", exc)
        service.close()
        return 1
    if args.pid_file:
        with open(args.pid_file, "w") as f:
            f.write(f"{os.getpid()}\n")
    stop = loop.create_future()

    def terminate(signum: int) -> None:
        if stop.done():
            return
        service.begin_stop()
        stop.set_result(signum)

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, terminate, sig)

    def reload() -> None:
        log.info("SIGHUP received: reloading %s", args.file)
        sd_notify("RELOADING=1")
        service.reload()
        sd_notify("READY=1")

    loop.add_signal_handler(signal.SIGHUP, reload)
    try:
        service.start()
        # What start-up allocated lives as long as the daemon: keep it out of the
        # collector's scans so a collection never stalls a deadline.
        gc.freeze()
        sd_notify("READY=1")
        log.info("running %d instance(s)", len(config.instances))
        signum = loop.run_until_complete(stop)
        log.info("%s received: stopped advertising, VIPs removed", signal.Signals(signum).name)
        sd_notify("STOPPING=1")
        loop.run_until_complete(service.finish_stop())
    finally:
        service.close()
        loop.close()
        if args.pid_file:
            try:
                os.unlink(args.pid_file)
            except FileNotFoundError:
                pass
    return 0


def add_status_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--control", default=DEFAULT_CONTROL, help="the daemon's control socket")


def status(args: argparse.Namespace) -> int:
    """Print the running daemon's status document (JSON)."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(5)
            s.connect(args.control)
            chunks = []
            while chunk := s.recv(65536):
                chunks.append(chunk)
    except OSError as exc:
        print(f"fastvrrp status: cannot reach {args.control}: {exc}", file=sys.stderr)
        return 1
    sys.stdout.write(b"".join(chunks).decode())
    return 0
