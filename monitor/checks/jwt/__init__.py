"""The jwt check family: the token matrix (``matrix``, ``cases``); ``family`` builds its
``Family``. Minting tokens is shared with the signalling login (``monitor.checks.tokens``)."""
