"""Container probe: exit 0 when the target answers, 1 when it does not. Standard library only.

    python httpprobe.py http://127.0.0.1:8000/readyz            # any 2xx answer
    python httpprobe.py http://127.0.0.1:8080/api/v1/health --token-file /run/secrets/token
    python httpprobe.py tcp://127.0.0.1:8080                    # the port accepts a connection

Used by the images' HEALTHCHECK, the docker-compose health checks and the Kubernetes exec probes
where an ``httpGet`` probe cannot work: the stream worker serves its metrics on loopback only, and
the control plane answers its health route only to a bearer token (which ``httpGet`` cannot read
from a Secret). The reason of a failure goes to stderr, where Kubernetes shows it in the events.
"""

from __future__ import annotations

import argparse
import socket
import sys
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit


def probe(target: str, *, token: str | None, timeout: float) -> str | None:
    """None when ``target`` answers as expected, else the reason it does not."""
    parts = urlsplit(target)
    if parts.scheme == "tcp":
        if parts.hostname is None or parts.port is None:
            return f"{target}: a tcp:// target needs a host and a port"
        try:
            with socket.create_connection((parts.hostname, parts.port), timeout=timeout):
                return None
        except OSError as exc:
            return f"{target}: {exc}"
    if parts.scheme not in {"http", "https"}:
        return f"{target}: expected an http://, https:// or tcp:// target"
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    request = urllib.request.Request(target, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status = int(response.status)
    except urllib.error.HTTPError as exc:
        return f"{target}: HTTP {exc.code} {exc.reason}"
    except (urllib.error.URLError, OSError) as exc:
        return f"{target}: {exc}"
    return None if 200 <= status < 300 else f"{target}: HTTP {status}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="httpprobe", description=__doc__)
    parser.add_argument("target", help="http(s):// URL (2xx expected) or tcp://host:port")
    parser.add_argument("--token-file", type=Path, help="file holding a bearer token to send")
    parser.add_argument("--timeout", type=float, default=3.0, help="seconds (default: 3)")
    args = parser.parse_args(argv)
    token = None
    if args.token_file is not None:
        try:
            token = args.token_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            sys.stderr.write(f"cannot read the token file {args.token_file}: {exc}\n")
            return 1
        if not token:
            sys.stderr.write(f"the token file {args.token_file} is empty\n")
            return 1
    failure = probe(args.target, token=token, timeout=args.timeout)
    if failure is not None:
        sys.stderr.write(failure + "\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
