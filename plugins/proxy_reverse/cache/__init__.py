"""The proxy's HTTP response cache, a shared cache under RFC 9111 (with RFC 5861 and
RFC 9211): sans-IO policy and keys, and the stores that hold responses.

``control`` reads the caching header fields, ``key`` builds cache keys, ``policy``
decides storing and reuse, ``validation`` handles revalidation and conditional requests,
``fields`` writes the stored and served header fields, ``store`` defines the store
interface, ``memory_store`` and ``disk_store`` implement it.
"""
