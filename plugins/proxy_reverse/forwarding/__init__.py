"""Forwarding to an upstream: exchange, header fields, connections, tunnels, loop guard."""
