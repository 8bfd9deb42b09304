"""The signalling check family."""
