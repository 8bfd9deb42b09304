"""The check families: one folder each (web, signalling, jwt, media)."""
