"""The program the operator's backup and restore Jobs run (``python -m checkout_backup``), from
the operator's own image.

A backup is one archive per run, ``<checkout>-<UTC time>.tar.gz``, with a ``.sha256`` beside it
(`archive`): inside, mongodump's directory layout (``<database>/<collection>.bson``, the
documents as raw BSON in ``_id`` order, and ``<collection>.metadata.json``, its options and
indexes in canonical Extended JSON) and a ``manifest.json`` with every collection's document count
and content hash. `dump` writes one and applies the retention; `restore` checks the checksum,
refuses a database that holds any document, loads every collection and checks that each count
and hash came back equal. mongodump itself (github.com/mongodb/mongo-tools) is not served by the
Go module proxy here, so the dump is PyMongo's, byte for byte what the server returns.

The operator learns the outcome from the container's termination message (`report`), a JSON
object of at most 4 KiB, so the Jobs need no access to the Kubernetes API.
"""
