"""The status pages of ``serve``: view-models and HTML/SVG rendering.

- ``model``: filters, rows and the public view's omissions;
- ``layout``: the page frame, styles (light and dark), formatters;
- ``svg``: sparklines, latency charts, timelines, badges;
- ``index``, ``server_page``, ``pool_page``, ``badges``: one renderer each;
- ``pages``: ``Pages``, which builds each view from state and history.
"""

from monitor.status.pages import Pages

__all__ = ["Pages"]
