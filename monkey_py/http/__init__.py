"""HTTP/1.1 on top of the event loop: parsing (httptools), requests, responses, connections."""
