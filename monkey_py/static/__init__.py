"""Static file serving: URL-to-path mapping, byte ranges, validators and media types."""
