"""Fleet mode: instances that share cache, health and figures through Redis.

The Redis client lives here: ``address`` (the ``redis://`` URL of a configuration),
``client`` (commands) and ``pubsub`` (subscriptions), each a link kept open on the
worker's own loop (``link``, ``connection``), the ``errors`` their callbacks get, and
``links`` (a worker's links, shared by what uses them). What the instances share rides
on it: ``settings`` (the Fleet keys), ``keys`` (the names in Redis), ``health`` (passive
health), ``checks`` (active health checks) and ``figures`` (each instance's figures).
See docs/fleet.md.
"""
