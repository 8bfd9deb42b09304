"""What the probes of several check families share: the HTTP/1.1 client (``http_client``).

The web family fetches the page and its files with it, the server sources
(``monitor.sources``) fetch their lists with it, and the signalling family
maps TLS failures with it; so it is no one family's and stays here. Each
family's own probe lives in its folder (``monitor.checks.<family>``).
"""
