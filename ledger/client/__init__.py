"""The ``magledger`` client: sign custody entries locally and submit them to a ledger server.

Imports only ``ledger.protocol``, the standard library and httpx, never Django, so that it
installs and runs on a recycler's or OEM's machine without the service. docs/client.md is
the user guide; ``ledger.client.cli`` is the command line, ``ledger.client.http`` the HTTP
transport with retries.
"""

from __future__ import annotations

from importlib import metadata

try:
    __version__ = metadata.version("magnet-ledger")
except metadata.PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"

__all__ = ["__version__"]
