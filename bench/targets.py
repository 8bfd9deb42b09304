"""Loopback targets: a throwaway CA, nginx serving a Jitsi-like site, blackbox_exporter.

nginx runs as a non-daemon child with its own prefix and config (never the
system service), TLS with full handshakes only: no session cache, no session
tickets. Every server of a generated fleet gets its own path prefix
(``/s/<name>/``) and, through SSI, a ``config.js`` naming its own domain, so
the monitor's config.js cache does not hide the parse as it would for a
fleet sharing one file.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import trustme

from bench.common import Child, free_port, wait_port

__all__ = ["Blackbox", "Certs", "Nginx", "config_js", "external_api_js", "index_html"]

# What Jitsi's index.html looks like in outline (the real one is larger and
# pulls in its bundles); enough for `GET /` to be a realistic page.
_INDEX_HEAD = """<!DOCTYPE html>
<html>
<head>
  <meta charset="utf-8">
  <meta http-equiv="content-type" content="text/html;charset=utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1.0">
  <meta name="apple-mobile-web-app-capable" content="yes">
  <title>Jitsi Meet</title>
  <link rel="icon" href="images/favicon.svg">
  <link rel="stylesheet" href="css/all.css?v=7001">
  <script>
    window.EXCALIDRAW_ASSET_PATH = 'libs/';
    const _t0 = window.performance.now();
    function _loadingMessage(show) {
      const el = document.getElementById('loading-message');
      if (el) { el.style.display = show ? 'block' : 'none'; }
    }
  </script>
  <script src="config.js?v=7001"></script>
  <script src="interface_config.js?v=7001"></script>
  <script src="libs/lib-jitsi-meet.min.js?v=7001"></script>
  <script src="libs/app.bundle.min.js?v=7001"></script>
</head>
<body>
  <noscript><div>JavaScript is disabled.</div>
    For this site to work you have to enable it.</noscript>
  <div id="react"></div>
"""


def index_html(size: int = 8192) -> str:
    """A Jitsi-like index page of about ``size`` bytes."""
    filler = "  <!-- " + "x" * 70 + " -->\n"
    body = _INDEX_HEAD
    while len(body) < size - 20:
        body += filler
    return body + "</body>\n</html>\n"


def config_js(domain: str, websocket: str) -> str:
    """A config.js in Jitsi's object shape (as the lab serves it)."""
    return (
        "/* jitsi-monitor bench */\n"
        "var config = {\n"
        f"    hosts: {{ domain: '{domain}', muc: 'conference.{domain}' }},\n"
        "    bosh: '/http-bind',\n"
        f"    websocket: '{websocket}',\n"
        "    disableIframeAPI: false,\n"
        "    p2p: { enabled: true },\n"
        "};\n"
    )


def external_api_js() -> str:
    return (
        "/* jitsi-monitor bench */\n"
        "function JitsiMeetExternalAPI(domain, options) { this.domain = domain; }\n"
    )


class Certs:
    """A throwaway CA and a leaf for localhost, 127.0.0.1 and ::1, written to ``dir``."""

    def __init__(self, directory: Path) -> None:
        ca = trustme.CA()
        leaf = ca.issue_cert("localhost", "127.0.0.1", "::1")
        self.ca_file = directory / "ca.pem"
        self.cert_file = directory / "leaf.pem"
        self.key_file = directory / "leaf.key"
        ca.cert_pem.write_to_path(str(self.ca_file))
        with self.cert_file.open("wb") as out:
            for pem in leaf.cert_chain_pems:
                out.write(pem.bytes())
        leaf.private_key_pem.write_to_path(str(self.key_file))


_NGINX_CONF = """\
daemon off;
master_process on;
worker_processes {workers};
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 8192; }}
http {{
    access_log off;
    types {{ text/html html; application/javascript js; }}
    default_type application/octet-stream;
    client_body_temp_path {prefix}/tmp/body;
    proxy_temp_path {prefix}/tmp/proxy;
    fastcgi_temp_path {prefix}/tmp/fastcgi;
    uwsgi_temp_path {prefix}/tmp/uwsgi;
    scgi_temp_path {prefix}/tmp/scgi;
    keepalive_timeout 65s;
    keepalive_requests 1000;
    server {{
        listen 127.0.0.1:{port} ssl;
{listen6}        server_name localhost;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        ssl_protocols TLSv1.2 TLSv1.3;
        # Every probe pays a full handshake, as a monitor's probes do.
        ssl_session_cache off;
        ssl_session_tickets off;
        root {prefix}/www;
        ssi_types application/javascript;
        set $srv "bench";
        location = / {{ try_files /index.html =404; }}
        location = /config.js {{ ssi on; }}
        location = /external_api.js {{ }}
        location ~ ^/s/(?<srv_name>[A-Za-z0-9_.-]+)/$ {{ try_files /index.html =404; }}
        location ~ ^/s/(?<srv_name>[A-Za-z0-9_.-]+)/config\\.js$ {{
            set $srv $srv_name;
            ssi on;
            try_files /config.js =404;
        }}
        location ~ ^/s/[A-Za-z0-9_.-]+/external_api\\.js$ {{ try_files /external_api.js =404; }}
    }}
}}
"""


def _has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


class Nginx:
    """nginx (the Debian package's binary) as a child on a loopback port, over TLS."""

    def __init__(self, certs: Certs, workers: int = 1, index_size: int = 8192) -> None:
        self.prefix = Path(tempfile.mkdtemp(prefix="jitsi-bench-nginx-"))
        self.port = free_port()
        www = self.prefix / "www"
        (self.prefix / "tmp").mkdir(parents=True)
        www.mkdir()
        websocket = f"wss://localhost:{self.port}/xmpp-websocket"
        (www / "index.html").write_text(index_html(index_size))
        (www / "config.js").write_text(
            config_js('<!--# echo var="srv" default="bench" -->.meet.bench', websocket)
        )
        (www / "external_api.js").write_text(external_api_js())
        # nginx's workers drop root: the files must be readable by anyone.
        for path in (self.prefix, www, *www.iterdir()):
            path.chmod(0o755 if path.is_dir() else 0o644)
        conf = self.prefix / "nginx.conf"
        conf.write_text(
            _NGINX_CONF.format(
                prefix=self.prefix,
                port=self.port,
                listen6=f"        listen [::1]:{self.port} ssl;\n" if _has_ipv6_loopback() else "",
                workers=workers,
                cert=certs.cert_file,
                key=certs.key_file,
            )
        )
        binary = shutil.which("nginx") or "/usr/sbin/nginx"
        self.child = Child(
            [binary, "-p", str(self.prefix), "-c", str(conf), "-e", str(self.prefix / "error.log")],
            stdout=subprocess.DEVNULL,
        )
        wait_port(self.port, self.child.proc)

    def url(self, host: str = "127.0.0.1", server: str | None = None) -> str:
        """The site's base URL, or a fleet server's (``/s/<server>/``)."""
        netloc = f"[{host}]" if ":" in host else host
        base = f"https://{netloc}:{self.port}/"
        return base if server is None else f"{base}s/{server}/"

    def __enter__(self) -> Nginx:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self.child.stop()
        shutil.rmtree(self.prefix, ignore_errors=True)


class Blackbox:
    """prometheus-blackbox-exporter (Debian) as a child, with an ``https`` module."""

    def __init__(self, ca_file: Path, timeout: float = 10.0) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="jitsi-bench-blackbox-"))
        self.port = free_port()
        conf = self.dir / "blackbox.yml"
        conf.write_text(
            "modules:\n"
            "  https:\n"
            "    prober: http\n"
            f"    timeout: {timeout:g}s\n"
            "    http:\n"
            "      preferred_ip_protocol: ip4\n"
            "      ip_protocol_fallback: true\n"
            "      tls_config:\n"
            f"        ca_file: {ca_file}\n"
        )
        binary = (
            shutil.which("prometheus-blackbox-exporter") or "/usr/bin/prometheus-blackbox-exporter"
        )
        self.child = Child(
            [
                binary,
                f"--config.file={conf}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--log.level=warn",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_port(self.port, self.child.proc)

    @property
    def pid(self) -> int:
        return self.child.pid

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> Blackbox:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.child.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
