"""The platform's shared keys: the keyring file format (``keyring``), writing files atomically
(``files``), the rotation state machine (``rotation``) and the key report every service serves and
every rotation driver reads (``report``).

Imports no web framework and no database driver (msgspec only): the operator ships this package
and nothing else of ``services``.
"""
