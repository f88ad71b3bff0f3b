"""The dead-man switch: when the control plane has accepted no register or
heartbeat for ``dead_man_after_s`` and the engines serve no request, run
``dead_man_command`` (``shutdown -h now``) once, so that a node whose control
plane is gone stops costing money. With a ``power_off`` step (the
``scaleway-poweroff`` action), that step goes first and the command runs only
when it fails.

The silence is counted from the last accepted register/heartbeat, or from the
agent's start when there was none. Past the deadline, requests in flight
(running or waiting in an engine, scraped fresh from its /metrics) hold the
switch until they end. Right before firing, one last heartbeat goes out with
a short timeout: the heartbeat loop may be deep in its backoff, and a control
plane that answers it is back, so the switch stands down and counts again."""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Callable, Sequence

from .events import EventLog

CHECK_INTERVAL_S = 1.0
LAST_CALL_TIMEOUT_S = 3.0
COMMAND_TIMEOUT_S = 60.0
# How long a power_off step may take at most (its own timeouts keep it under).
POWER_OFF_BOUND_S = 60.0
OUTPUT_TAIL = 500


class DeadManSwitch:
    """`last_contact()` gives the clock value of the last accepted message
    (None: never), `load()` the (running, waiting) requests now, and
    `last_call()` sends one heartbeat and says whether it was accepted;
    `power_off()`, when given, asks the cloud to power the node off and says
    whether it accepted. `check()` is one decision; `start()` runs it in a
    thread until it fires."""

    def __init__(
        self,
        after_s: float,
        command: Sequence[str],
        events: EventLog,
        *,
        last_contact: Callable[[], float | None],
        load: Callable[[], tuple[int, int]],
        last_call: Callable[[], bool],
        power_off: Callable[[], bool] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if after_s <= 0 or not command:
            raise ValueError("a dead-man switch needs a positive delay and a command")
        self.after_s = after_s
        self.command = list(command)
        self.events = events
        self.last_contact = last_contact
        self.load = load
        self.last_call = last_call
        self.power_off = power_off
        self.clock = clock
        self.started_at = clock()
        self.fired = False
        self._holding = False  # "dead_man_held" was logged for this silence
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="dead-man", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=POWER_OFF_BOUND_S + COMMAND_TIMEOUT_S + LAST_CALL_TIMEOUT_S)

    def _run(self) -> None:
        interval = min(CHECK_INTERVAL_S, self.after_s / 4)
        while not self._stop.wait(interval):
            if self.check():
                return

    def silent_for(self) -> float:
        """Seconds since the control plane last accepted a message (or since start)."""
        contact = self.last_contact()
        since = self.started_at if contact is None else max(contact, self.started_at)
        return self.clock() - since

    def check(self) -> bool:
        """One decision; True once the switch has fired (it never fires again)."""
        if self.fired:
            return True
        silent = self.silent_for()
        if silent < self.after_s:
            self._holding = False
            return False
        running, waiting = self.load()
        if running or waiting:
            if not self._holding:
                self._holding = True
                self.events.emit(
                    "dead_man_held",
                    silent_s=round(silent, 1),
                    requests_running=running,
                    requests_waiting=waiting,
                )
            return False
        if self.last_call():
            self._holding = False
            self.events.emit("dead_man_stood_down", reason="the control plane answered")
            return False
        self.fired = True
        self.events.emit(
            "dead_man_fired",
            reason=f"no answer from the control plane for {silent:.0f} s "
            f"(limit {self.after_s:g} s) and no request in flight",
            silent_s=round(silent, 1),
            program=self.command[0],  # not the arguments: they are not ours to log
        )
        if self.power_off is None or not self.power_off():
            self._execute()
        return True

    def _execute(self) -> None:
        try:
            done = subprocess.run(
                self.command,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=COMMAND_TIMEOUT_S,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as e:
            self.events.emit("dead_man_command_failed", program=self.command[0], error=str(e))
            return
        fields: dict[str, object] = {"program": self.command[0], "exit_code": done.returncode}
        if done.returncode != 0:
            fields["stderr"] = done.stderr.decode("utf-8", errors="replace")[-OUTPUT_TAIL:]
        self.events.emit("dead_man_command_exited", **fields)
