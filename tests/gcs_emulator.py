"""gcp-storage-emulator in this process, on 127.0.0.1, with the fixes our tests need.

The fixes touch the emulator's internals, so its version is pinned in setup.py.
"""

from __future__ import annotations

import http.server
import logging
import urllib.parse
from typing import Any

from gcp_storage_emulator import storage as emulator_storage
from gcp_storage_emulator.server import Server, create_server


def _quoted_object_path(self: Any, bucket_name: str, file_name: str) -> str:
    # Unquoted, 'a//b' aliases 'a/b' and any '..' crashes the request; quoted, every name is
    # stored as given, so the launcher's own refusal of unsafe names can be tested.
    return f"{bucket_name}/{urllib.parse.quote(file_name, safe='')}"


def start_emulator() -> tuple[Server, str]:
    """Returns the running server and its http://host:port for STORAGE_EMULATOR_HOST."""
    # Single-threaded http.server with a listen queue of 5 drops parallel clients' connections.
    http.server.HTTPServer.request_queue_size = 1024
    # It logs every request at INFO, into whatever logging the app under test set up.
    logging.getLogger("gcp_storage_emulator").setLevel(logging.WARNING)
    emulator_storage.Storage._object_path = _quoted_object_path
    server = create_server("127.0.0.1", 0, in_memory=True)
    server.start()
    host, port = server._api._httpd.server_address
    return server, f"http://{host}:{port}"
