"""An example third-party monkey_py plugin; the hooks are in :mod:`.plugin`."""
