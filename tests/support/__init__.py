"""What the tests share: loopback sites, child processes, real servers
(Prosody, coturn, Chromium) and helpers. Test modules import from here, never
from one another; tests/conftest.py holds only fixtures."""
