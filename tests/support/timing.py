"""How the tests tell "it did not wait" without timing anything a loaded
machine can stretch. Timing figures belong in bench/, never in a test.

- Work done is measured in CPU time (``time.process_time``, ``thread_time``),
  which other programs on the machine do not inflate.
- "It did not wait for X" is shown by making X far larger than the step
  needs, and asserting the step ended before X (or by its reason, or by the
  order of events), never by a bound close to the step's own duration.
"""

from __future__ import annotations

# What a loaded 2-core machine may add to a step's own deadline; the waits the
# tests guard against (a hang, aiohttp's 5-minute total, a timeout set to a
# minute) are far longer.
SLACK = 10.0
