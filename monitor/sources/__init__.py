"""Servers from elsewhere: lists of public instances, files that change, HTTP SD.

- ``names``: entries of a list made into checked URLs and server names;
- ``fetch``: reading a URL or a file, bounded in size and time;
- ``lists``: the community lists (Markdown tables, plain lists) for ``discover``;
- ``files`` and ``http_sd``: the ``server_sources`` of a config;
- ``merge``: a config's own servers together with its sources' servers;
- ``watch``: the running sources of ``serve`` and their state;
- ``status``: what ``/healthz`` and the metrics show of each source.

Everything a list or an endpoint says is untrusted: sizes and times are
bounded, names follow the server-name rules, URLs pass ``server_url``.
This package is kept light to import: each module is imported by name.
"""
