"""cgi: run CGI/1.1 scripts (RFC 3875) as children of the worker, on its event loop.

The hooks are in :mod:`.plugin`, the child process in :mod:`.script`. What CGI and
FastCGI share (the request's meta-variables, the script's response head) is in
:mod:`.environ` and :mod:`.response`, which the fastcgi plugin uses too. See
docs/plugins/cgi.md.
"""
