"""High availability on PostgreSQL: one leader among ``serve`` instances, fenced by an epoch.

- ``settings``: the ``ha:`` block as plain values, and the timings derived from the lease;
- ``store``: the database (one connection holding the leader's advisory lock, one
  for the shared state), every statement bounded in time;
- ``role``: the election loop, the deadline after which a leader stops acting, the
  fenced writes of the shared state, and what a follower mirrors.

See docs/ha.md for the design and each failure case.
"""
