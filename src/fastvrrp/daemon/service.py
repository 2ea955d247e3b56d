"""The daemon's parts put together: the router, notify scripts and notify FIFOs."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import os
import socket
import time

from collections.abc import Callable

from fastvrrp.config import ConfigError
from fastvrrp.config.model import Config
from fastvrrp.daemon.fifo import NotifyFifo, open_notify_fifos
from fastvrrp.daemon.instances import Runtime, StartupError
from fastvrrp.daemon.notify import (
    NotifyEvent,
    NotifyRunner,
    ScriptUsers,
    group_event,
    instance_event,
    priority_change_event,
    rx_lower_pri_event,
)
from fastvrrp.daemon.router import Router
from fastvrrp.daemon.tracking import TrackingEngine
from fastvrrp.net.scheduling import Scheduling, SchedulingRequest
from fastvrrp.proto import actions as A
from fastvrrp.proto.actions import State

log = logging.getLogger("fastvrrp")

STOP_NOTIFY_WAIT_S = 5.0  # bounded wait for STOP scripts at shutdown (keepalived: 1 s, then kill)


class Service:
    def __init__(self, config: Config, loop: asyncio.AbstractEventLoop,
                 control_path: str | None = None,
                 reload_config: Callable[[], Config] | None = None,
                 max_notify_scripts: int = 32) -> None:
        self.config = config
        self.loop = loop
        self.reload_config = reload_config
        self.control_path = control_path
        self._control: asyncio.AbstractServer | None = None
        g = config.globals
        # At most this many notify scripts run at once (a storm of transitions queues
        # behind them, in order per instance); NotifyRunner refuses less than 1.
        self.notifier = NotifyRunner(loop, max_concurrency=max_notify_scripts,
                                     users=ScriptUsers(g.script_user, g.script_group))
        self.fifos: list[NotifyFifo] = []
        self.router = Router(config, notify=self._notify)
        self.tracking: TrackingEngine | None = None
        # global_defs' vrrp_priority, vrrp_rt_priority, ...: applied once running
        # (start-up, reload and shutdown run at the policy the daemon was started with).
        self.scheduling = Scheduling()

    def open(self) -> None:
        # The control socket first: a second daemon given the same path stops here,
        # before it touches the network (the router removes stale VIPs as it opens).
        if self.control_path:
            self._open_control(self.control_path)
        self.fifos = open_notify_fifos(self.config.globals, loop=self.loop)
        self.router.open()

    def _open_control(self, path: str) -> None:
        """Listen on `path`, replacing a previous run's socket but never a live one: two
        daemons on one host (one per namespace, say) need a --control each."""
        if os.path.exists(path):
            probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                probe.connect(path)
            except OSError:
                os.unlink(path)  # nobody listens: a previous run's socket
            else:
                raise StartupError(f"control socket {path} is in use by a running daemon; "
                                   "give this one its own --control")
            finally:
                probe.close()
        self._control = self.loop.run_until_complete(
            asyncio.start_unix_server(self._answer_status, path=path))

    def start(self) -> None:
        self.router.attach(self.loop)
        self.router.start()
        self._start_tracking(None)
        self._apply_scheduling()

    def _apply_scheduling(self) -> None:
        request = SchedulingRequest.of(self.config.globals)
        if request == self.scheduling.request and not request.rt_priority:
            return  # nothing asked for, or nothing changed
        self.scheduling.apply(request)
        self.router.set_breathing(self.scheduling.breathe_every_ns)
        log.info("scheduling: %s", self.scheduling.describe())

    def _suspend_scheduling(self) -> None:
        """Out of real time for start-up-like work (reload, shutdown): long runs of
        Python that RLIMIT_RTTIME would kill."""
        self.scheduling.suspend()
        self.router.set_breathing(0)

    def reload(self) -> None:
        """SIGHUP: read the config again. A config with errors changes nothing; else
        instances whose configuration is unchanged keep running (state, timers, VIPs),
        the others are shut down as at exit and the new ones start."""
        if self.reload_config is None:
            return
        self._suspend_scheduling()
        try:
            self._reload()
        finally:
            self._apply_scheduling()

    def _reload(self) -> None:
        try:
            new = self.reload_config()
        except ConfigError as exc:
            for message in exc.messages:
                log.error("%s", message)
            log.error("reload: the new configuration has errors; keeping the running one")
            return
        if new == self.config:
            log.info("reload: configuration unchanged")
            return
        started = time.monotonic()
        carried = self.router.hand_over(new)
        self.router.close()
        old = self.config
        try:
            self._replace_router(new, carried)
        except (StartupError, OSError) as exc:
            log.error("reload: cannot run the new configuration (%s); restarting the old one", exc)
            self._replace_router(old, {})
            return
        log.info("reload: %d instance(s) kept running, %d started, in %.1f ms", len(carried),
                 len(new.instances) - len(carried), (time.monotonic() - started) * 1000)

    def _replace_router(self, config: Config, carried: dict) -> None:
        previous = self.tracking
        self.config = config
        self.router = Router(config, notify=self._notify)
        self.router.open(carried)
        self.router.attach(self.loop)
        self.router.start()
        self._start_tracking(previous)
        if previous is not None:
            self.loop.create_task(previous.stop())

    def _start_tracking(self, previous: TrackingEngine | None) -> None:
        """Trackers feed the router; the router feeds them interface changes."""
        router = self.router
        self.tracking = TrackingEngine(self.config, router.tracking_changed, self.loop,
                                       previous=previous)
        for ifname in self.tracking.tracked_interfaces():
            self.tracking.interface_changed(ifname, router.link_state(ifname))
        router.on_link = self.tracking.interface_changed
        self.tracking.start()

    async def _answer_status(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """The control socket: one JSON status document per connection."""
        status = self.router.status()
        status["notify"] = dataclasses.asdict(self.notifier.stats())
        writer.write(json.dumps(status).encode() + b"\n")
        try:
            await writer.drain()
        finally:
            writer.close()

    def _notify(self, who: Runtime | str, action: A.Action) -> None:
        event: NotifyEvent | None = None
        if isinstance(action, A.Notify) and isinstance(who, Runtime):
            event = instance_event(who.cfg, action.state, action.priority)
        elif isinstance(action, A.GroupNotify):
            event = group_event(self.config.sync_group(action.group), action.state)
        elif isinstance(action, A.NotifyMasterRxLowerPri) and isinstance(who, Runtime):
            event = rx_lower_pri_event(who.cfg, who.fsm.priority)
        elif isinstance(action, A.NotifyPriorityChange) and isinstance(who, Runtime):
            event = priority_change_event(who.name, action.state == State.MASTER, action.priority)
        if event is None:
            return
        self.notifier.submit((event.kind, event.name), event)
        for f in self.fifos:
            f.write_event(event)

    def begin_stop(self) -> None:
        """Called from the signal handler itself: the priority-0 adverts and VIP
        removal go out before anything else runs (keepalived vrrp_terminate_phase1).
        The FIFO scripts get SIGTERM first and can still read the STOP lines."""
        self._suspend_scheduling()
        for f in self.fifos:
            f.terminate_script()
        self.router.shutdown()
        self._close_control()

    async def finish_stop(self) -> None:
        """Stop tracking, wait (bounded) for STOP notifies, close the FIFOs."""
        if self.tracking is not None:
            await self.tracking.stop()
        left = await self.notifier.drain(STOP_NOTIFY_WAIT_S)
        if left:
            log.warning("%d notify event(s) not run before exit", len(left))
        for f in self.fifos:
            await f.close()

    def _close_control(self) -> None:
        if self._control is not None:
            self._control.close()
            self._control = None
            if self.control_path and os.path.exists(self.control_path):
                os.unlink(self.control_path)

    def close(self) -> None:
        self._close_control()  # a start that failed after it was bound
        self.router.close()
        self.notifier.close()
