"""Run a ppreg command that kills itself (SIGKILL) at its N-th message, for fault tests.

``python tests/faultinject.py N LOG -- serve FIXED --listen ...`` runs ``ppreg serve ...``
and counts every message the process sends or is about to receive on any channel; at
message N it writes one line to LOG and SIGKILLs itself, like a crash or ``kill -9`` at
that exact protocol point. With N = 0 it never dies and appends every event to LOG
(``index phase direction detail``), so a test can pick kill points from a reference run.
The phase is ``setup`` until the first product message of a level, then ``iterations``.
Only tests use this; ppreg itself has no fault hooks.
"""

from __future__ import annotations

import os
import signal
import sys

from ppreg.transport.channel import Channel

PRODUCT_KINDS = {"mpc_product", "mpc_share", "triple", "triples", "fhe_product", "fhe_reveal"}
SETUP_KINDS = {"level", "hello"}


class Counter:
    def __init__(self, kill_at: int, log_path: str):
        self.kill_at, self.log_path = kill_at, log_path
        self.count, self.phase = 0, "setup"

    def event(self, direction: str, channel: Channel, kind: str | None) -> None:
        self.count += 1
        if kind in SETUP_KINDS:
            self.phase = "setup"
        line = f"{self.count} {self.phase} {direction} {channel.remote}:{kind or 'next'}\n"
        if self.kill_at == 0:
            self._log(line)
        elif self.count == self.kill_at:
            self._log(line)
            os.kill(os.getpid(), signal.SIGKILL)
        if kind in PRODUCT_KINDS:
            self.phase = "iterations"

    def received(self, kind: str) -> None:
        if kind in PRODUCT_KINDS:
            self.phase = "iterations"
        elif kind in SETUP_KINDS:
            self.phase = "setup"

    def _log(self, line: str) -> None:
        with open(self.log_path, "a") as log:
            log.write(line)


def install(counter: Counter) -> None:
    send_message, recv = Channel.send_message, Channel.recv

    def counted_send(self, message):
        counter.event("send", self, message.kind)
        return send_message(self, message)

    def counted_recv(self, kind=None):
        counter.event("recv", self, kind)
        message = recv(self, kind)
        counter.received(message.kind)
        return message

    Channel.send_message, Channel.recv = counted_send, counted_recv


def main() -> None:
    kill_at, log_path, separator, *arguments = sys.argv[1:]
    assert separator == "--", "usage: faultinject.py N LOG -- PPREG ARGS..."
    install(Counter(int(kill_at), log_path))
    from ppreg.cli.app import app

    app(args=arguments, prog_name="ppreg")


if __name__ == "__main__":
    main()
