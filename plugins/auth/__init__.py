"""auth: HTTP Basic authentication per location, Monkey's ``[AUTH]`` site sections.

The hooks are in :mod:`.plugin`; ``monkey passwd`` (:mod:`.passwd`) writes the users
files. See docs/plugins/auth.md.
"""
