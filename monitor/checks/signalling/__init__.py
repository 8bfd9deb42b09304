"""The signalling check family: the XMPP login, focus and MUC join (``xmpp``);
``family`` builds its ``Family``."""
