"""The proxy's response cache: the front end here, rules/ (sans-IO RFC 9111) and stores/."""
