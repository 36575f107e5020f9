"""A small HTTP JSON service: GET / answers with a greeting and where it runs."""

from __future__ import annotations

import json
import os
import pkgutil
import signal
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import yaml

SETTINGS = yaml.safe_load(pkgutil.get_data(__name__.rsplit(".", 1)[0], "settings.yaml") or b"")


def status() -> dict:
    return {
        "service": SETTINGS["service"],
        "greeting": SETTINGS["greeting"],
        "python": sys.version.split()[0],
        "uid": os.getuid(),
        "cwd": os.getcwd(),
        "yaml": yaml.__version__,
    }


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path not in ("/", "/status"):
            self.send_error(404)
            return
        body = json.dumps(status()).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        sys.stderr.write(f"{self.address_string()} {format % args}\n")


class Stop(Exception):
    """Raised in the main thread by a stop signal, to leave serve_forever()."""


def stop(signum: int, frame: object) -> None:
    raise Stop(signal.Signals(signum).name)


def main() -> None:
    host = os.environ.get("HOST", "0.0.0.0")
    port = int(os.environ.get("PORT", "8080"))
    server = ThreadingHTTPServer((host, port), Handler)
    # As PID 1 of a container the service gets no default action for SIGTERM or SIGINT: without
    # handlers `podman stop` waits out its timeout and kills it, and Ctrl-C prints a traceback.
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(f"listening on {host}:{port}", flush=True)
    try:
        server.serve_forever()
    except Stop as stopped:
        print(f"stopping on {stopped}", flush=True)
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
