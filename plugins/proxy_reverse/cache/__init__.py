"""The proxy's HTTP response cache: rules/ (sans-IO RFC 9111) and stores/."""
