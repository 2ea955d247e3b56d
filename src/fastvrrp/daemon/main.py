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
import time

from fastvrrp import __version__, accel
from fastvrrp.config import ConfigError, load
from fastvrrp.daemon.instances import StartupError

log = logging.getLogger("fastvrrp")
DEFAULT_CONTROL = "/run/fastvrrp.sock"
DEFAULT_MAX_NOTIFY_SCRIPTS = 32


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("-f", "--file", default="/etc/keepalived/keepalived.conf",
                   help="keepalived.conf to run (default: %(default)s)")
    p.add_argument("-i", "--config-id", default=None, help="config id for @conditional lines")
    p.add_argument("--pid-file", default=None, help="write the daemon's pid here")
    p.add_argument("--control", default=DEFAULT_CONTROL,
                   help="unix socket answering `fastvrrp status` (default: %(default)s; '' for none)")
    p.add_argument("--log", choices=("stderr", "syslog"), default="stderr")
    p.add_argument("-D", "--log-detail", action="store_true", help="debug logging")
    p.add_argument("--max-notify-scripts", type=_at_least_one, default=DEFAULT_MAX_NOTIFY_SCRIPTS,
                   metavar="N",
                   help="run at most N notify scripts at once across all instances and sync "
                        "groups; each instance's scripts still run one transition at a time, "
                        "in order (default: %(default)s; keepalived has no such limit)")


def _at_least_one(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


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
    t_run = time.monotonic()
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
    t_config = time.monotonic()
    for w in config.warnings:
        log.warning("%s", w)

    import uvloop

    from fastvrrp.daemon.service import Service

    loop = uvloop.new_event_loop()
    asyncio.set_event_loop(loop)
    service = Service(config, loop, control_path=args.control or None,
                      reload_config=lambda: load(args.file, config_id=args.config_id),
                      max_notify_scripts=args.max_notify_scripts)
    t_open = time.monotonic()
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
    # The soft RLIMIT_RTTIME of vrrp_rt_priority (its default action would kill us).
    loop.add_signal_handler(signal.SIGXCPU, log.warning, "VRRP process has used too much CPU time, "
                            "vrrp_rlimit_rttime may need to be increased")
    try:
        t_start = time.monotonic()
        service.start()
        # What start-up allocated lives as long as the daemon: keep it out of the
        # collector's scans so a collection never stalls a deadline.
        gc.freeze()
        sd_notify("READY=1")
        t_ready = time.monotonic()
        log.info("running %d instance(s); start-up %.0f ms: config %.0f, imports %.0f, "
                 "set-up %.0f (interfaces, sockets, stale VIPs, machines), start %.0f",
                 len(config.instances), (t_ready - t_run) * 1000, (t_config - t_run) * 1000,
                 (t_open - t_config) * 1000, (t_start - t_open) * 1000, (t_ready - t_start) * 1000)
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
