"""The web check family."""
