"""The daemon's parts put together: the router, notify scripts and notify FIFOs."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import os

from fastvrrp.config.model import Config
from fastvrrp.daemon.fifo import NotifyFifo, open_notify_fifos
from fastvrrp.daemon.instances import Runtime
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
from fastvrrp.proto import actions as A
from fastvrrp.proto.actions import State

log = logging.getLogger("fastvrrp")

STOP_NOTIFY_WAIT_S = 5.0  # bounded wait for STOP scripts at shutdown (keepalived: 1 s, then kill)


class Service:
    def __init__(self, config: Config, loop: asyncio.AbstractEventLoop,
                 control_path: str | None = None) -> None:
        self.config = config
        self.loop = loop
        self.control_path = control_path
        self._control: asyncio.AbstractServer | None = None
        g = config.globals
        self.notifier = NotifyRunner(loop, users=ScriptUsers(g.script_user, g.script_group))
        self.fifos: list[NotifyFifo] = []
        self.router = Router(config, notify=self._notify)

    def open(self) -> None:
        self.fifos = open_notify_fifos(self.config.globals, loop=self.loop)
        self.router.open()

    def start(self) -> None:
        self.router.attach(self.loop)
        self.router.start()
        if self.control_path:
            if os.path.exists(self.control_path):
                os.unlink(self.control_path)  # a previous run's socket
            self._control = self.loop.run_until_complete(
                asyncio.start_unix_server(self._answer_status, path=self.control_path))

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

    async def stop(self) -> None:
        if self._control is not None:
            self._control.close()
            if self.control_path and os.path.exists(self.control_path):
                os.unlink(self.control_path)
        # keepalived (vrrp_terminate_phase1, script_killall): the FIFO scripts get
        # SIGTERM before the STOP lines, which they can still read before EOF.
        for f in self.fifos:
            f.terminate_script()
        self.router.shutdown()
        left = await self.notifier.drain(STOP_NOTIFY_WAIT_S)
        if left:
            log.warning("%d notify event(s) not run before exit", len(left))
        for f in self.fifos:
            await f.close()

    def close(self) -> None:
        self.router.close()
        self.notifier.close()
