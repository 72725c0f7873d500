"""mandril: Monkey's access rules by client address, URL and hotlinking.

The hooks are in :mod:`.plugin`, the rules in :mod:`.rules`. See docs/plugins/mandril.md.
"""
