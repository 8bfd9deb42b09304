"""The web check family: the page, config.js (``configjs``, the sandboxed engine only this
family uses), external_api.js and the embed limit; ``family`` builds its ``Family``."""
