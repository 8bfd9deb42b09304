"""The jwt check family."""
