"""The connection layer: urllib3's pool and connection classes, through their extension
points, and the connect-time SSRF guard.

The only part of the package allowed near the private internals of urllib3, http.client
or the socket module; everything above it sees a ``urllib3.PoolManager`` and responses.
"""
