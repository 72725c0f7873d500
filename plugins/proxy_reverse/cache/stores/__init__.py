"""Where cached responses are kept: the store interface, a memory store, a disk store."""
