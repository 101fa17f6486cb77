"""The platform's shared keys: the keyring file format (``keyring``), writing files atomically
(``files``), the rotation state machine (``rotation``), the key report every service serves and
every rotation driver reads (``report``), and the one rotation driver, which applies the state
machine to a ring in a store (``driver``: a Secret for the operator, files for local mode).

Imports no web framework and no database driver (msgspec, and httpx for the key reports): the
operator ships this package and nothing else of ``services``.
"""
