"""sd_notify: tell systemd we are ready and alive, over $NOTIFY_SOCKET.

The protocol is one datagram of ``KEY=value`` lines to a Unix socket whose
path is in ``$NOTIFY_SOCKET`` (a leading "@" means the abstract namespace).
Without that variable (not started by systemd) every call does nothing.
"""

from __future__ import annotations

import os
import socket


class Notifier:
    """Sends notifications to systemd; silent when not under systemd."""

    def __init__(self, environ: dict[str, str] | None = None) -> None:
        environ = os.environ if environ is None else environ
        address = environ.get("NOTIFY_SOCKET", "")
        self.address = "\0" + address[1:] if address.startswith("@") else address
        usec = environ.get("WATCHDOG_USEC", "")
        self.watchdog_interval = int(usec) / 2e6 if usec.isdigit() else None
        self._socket: socket.socket | None = None

    @property
    def enabled(self) -> bool:
        return bool(self.address)

    def notify(self, message: str) -> bool:
        """Send *message*; False if there is no socket or sending failed."""
        if not self.address:
            return False
        try:
            if self._socket is None:
                self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            self._socket.sendto(message.encode(), self.address)
        except OSError:
            return False
        return True

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None
