"""dirlisting: an HTML index for directories that have no index file.

The hooks are in :mod:`.plugin`; the themes (Monkey's header/entry/footer templates) in
:mod:`.theme`; reading and rendering a directory in :mod:`.listing`. See
docs/plugins/dirlisting.md.
"""
