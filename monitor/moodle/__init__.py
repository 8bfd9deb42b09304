"""Moodle with mod_jitsi (issue 24): its Jitsi servers read from its database, and
the switch of its active server through ``admin/cli/cfg.php``.

- ``servers``: a ``jitsi_servers`` row as a plain value (``MoodleServer``) or a
  per-row problem; credentials whose reprs hide the secrets;
- ``database``: the DSN, the password (file or environment), one bounded read
  of the site, and ``SiteReader`` that keeps the last good read;
- ``switch``: the cfg.php command, bounded in time and output, and its read-back.

The drivers come with ``pip install 'jitsi-monitor[moodle]'``. Nothing here
imports ``monitor.config``: ``monitor/config/moodle.py`` turns the YAML block
into these values.
"""
