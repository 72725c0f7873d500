"""Fleet mode: instances that share cache, health and figures through Redis.

The Redis client lives here: ``address`` (the ``redis://`` URL of a configuration),
``client`` (commands) and ``pubsub`` (subscriptions), each a link kept open on the
worker's own loop (``link``, ``connection``), and the ``errors`` their callbacks get.
See docs/fleet.md.
"""
