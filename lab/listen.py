"""Whether a lab server can listen where it is told to, asked before uvicorn starts.

uvicorn reports a taken port or an unknown host as several log lines and exits 3; the
agent and the alert sink check first and stop with one line naming the setting to change.
"""

from __future__ import annotations

import socket


def listen_problem(host: str, port: int, host_variable: str, port_variable: str) -> str | None:
    """Why a server could not listen on host:port, in one line; None when it can."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM)[0]
    except socket.gaierror as error:
        return f"{host_variable}={host!r} is not an address of this machine: {error.strerror}"
    except UnicodeError as error:
        # A name the resolver cannot even encode, such as a label over 63 characters.
        return f"{host_variable}={host!r} is not a host name: {error}"
    with socket.socket(family, kind, proto) as probe:
        # As uvicorn does, so a port in TIME_WAIT from the last run counts as free.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as error:
            return (f"cannot listen on {host}:{port}: {error.strerror}; "
                    f"set {port_variable} (or {host_variable}) to a free one")
    return None
