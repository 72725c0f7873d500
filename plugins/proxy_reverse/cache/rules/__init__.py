"""Sans-IO caching rules (RFC 9111): header fields, keys, storing and reuse, revalidation."""
