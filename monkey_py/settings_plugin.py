"""A base class for plugins whose configuration is read by one settings class.

Such a plugin claims its site sections, checks its settings at start (and before every
reload) by building them, and builds them again in each worker. ``SettingsPlugin``
implements those three hooks once; pluggy finds hook implementations inherited from a
base class as it finds the plugin's own.
"""

from __future__ import annotations

from typing import Any, Callable, ClassVar

from .hookspec import hookimpl


class SettingsPlugin:
    """Implements ``monkey_site_sections``, ``monkey_check_config`` and
    ``monkey_worker_start`` from two class attributes.

    ``site_sections`` names the site-file sections the plugin reads; ``settings_class``
    reads and checks a configuration (``settings_class(config)``, raising ``ConfigError``
    at the faulty line). In each worker, ``self.settings`` and ``self.loop`` are set before
    :meth:`start_worker` builds the rest of the worker's state.
    """

    site_sections: ClassVar[tuple[str, ...]] = ()
    # Called through the class, so that a plain function serves as well as a class: it is
    # not bound to the plugin.
    settings_class: ClassVar[Callable[[Any], Any]]

    settings: Any = None
    loop: Any = None

    @hookimpl
    def monkey_site_sections(self):
        return list(self.site_sections)

    @hookimpl
    def monkey_check_config(self, config):
        type(self).settings_class(config)

    @hookimpl
    def monkey_worker_start(self, worker):
        self.settings = type(self).settings_class(worker.config)
        self.loop = worker.loop
        self.start_worker(worker)

    def start_worker(self, worker) -> None:
        """Build the rest of this worker's state; ``self.settings`` and ``self.loop`` are set."""
