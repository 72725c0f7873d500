"""fastcgi: forward requests to FastCGI servers such as PHP-FPM, on the event loop.

The hooks are in :mod:`.plugin`; the record framing (sans-IO) in :mod:`.records`; the
servers and their connection pools in :mod:`.servers`; one request's exchange in
:mod:`.exchange`. See docs/plugins/fastcgi.md.
"""
