"""Debian's nginx as a real load balancer in front of gateway replicas (``make nginx`` installs it).

Round robin over the replicas; a replica that refuses connections is skipped for the
request (``proxy_next_upstream error``: nothing was sent to it, so even a POST may move on)
and taken out for ``fail_timeout``. Each answer says which replica served it
(``X-Upstream``). No upstream keep-alive: a connection nginx pooled to a replica that then
died could fail a request that was already written to it.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path

from devkit.processes import ServiceProcess

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"

_CONFIG = """\
worker_processes 1;
pid {run}/nginx.pid;
error_log {run}/error.log warn;
events {{ worker_connections 512; }}
http {{
    access_log off;
    client_body_temp_path {run}/body;
    proxy_temp_path {run}/proxy;
    fastcgi_temp_path {run}/fastcgi;
    uwsgi_temp_path {run}/uwsgi;
    scgi_temp_path {run}/scgi;
    client_max_body_size 30m;
    client_body_buffer_size 30m;
    upstream gateways {{
{servers}
    }}
    server {{
        listen 127.0.0.1:{port};
        location = /nginx-health {{ return 200 "ok"; }}
        location / {{
            proxy_pass http://gateways;
            proxy_next_upstream error timeout;
            proxy_connect_timeout 2s;
            proxy_read_timeout 60s;
            proxy_buffering off;
            proxy_set_header X-Request-ID $request_id;
            add_header X-Upstream $upstream_addr always;
        }}
    }}
}}
"""


def nginx_process(upstreams: Sequence[ServiceProcess], run_dir: Path) -> ServiceProcess:
    """nginx in the foreground balancing over ``upstreams`` (not started)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    run_dir.chmod(0o777)  # nginx workers run as nobody when started by root
    servers = "\n".join(f"        server {u.host}:{u.port} max_fails=1 fail_timeout=30s;" for u in upstreams)
    process = ServiceProcess(
        [NGINX, "-e", str(run_dir / "error.log"), "-c", str(run_dir / "nginx.conf"), "-g", "daemon off;"],
        name="nginx",
        ready_path="/nginx-health",
        startup_timeout=15,
    )
    (run_dir / "nginx.conf").write_text(_CONFIG.format(run=run_dir, servers=servers, port=process.port))
    return process
