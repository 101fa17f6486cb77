"""``python -m checkout_backup backup|restore ...``: what the backup and restore Jobs run.

Exit 0 with the report as the termination message; exit 1 with ``{"ok": false, "error": ...}``
there (and the error on stderr) when the backup or restore failed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from kubernetes.utils.quantity import parse_quantity

from .archive import BackupError
from .databases import Source
from .dump import dump
from .restore import find_archive, restore

REPORT_LIMIT = 4096
"""Bytes Kubernetes keeps of a container's termination message."""


def quantity_bytes(text: str) -> int:
    """A Kubernetes storage quantity (``1Gi``, ``500M``, ``1024``) in bytes."""
    try:
        return int(parse_quantity(text.strip()))
    except ValueError:
        raise BackupError(
            f"--capacity: {text!r} is not a storage quantity like 1Gi or 500M"
        ) from None


def write_report(report: dict[str, Any], path: str) -> None:
    """The report as the termination message (cut to what Kubernetes keeps) and on stdout."""
    text = json.dumps(report, separators=(",", ":"))
    while len(text.encode()) > REPORT_LIMIT and report.get("deleted"):
        report = {**report, "deleted": report["deleted"][:-1], "deletedMore": True}
        text = json.dumps(report, separators=(",", ":"))
    print(text, flush=True)
    if path:
        try:
            Path(path).write_text(text[:REPORT_LIMIT])
        except OSError as exc:  # outside a pod: stdout has it
            print(f"checkout_backup: cannot write the report to {path}: {exc}", file=sys.stderr)


def parse(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m checkout_backup", description=__doc__)
    parser.add_argument("--database", action="append", required=True, dest="databases")
    parser.add_argument("--timeout", type=float, default=10.0)
    parser.add_argument(
        "--report", default=os.environ.get("CHECKOUT_BACKUP_REPORT", "/dev/termination-log")
    )
    actions = parser.add_subparsers(dest="action", required=True)
    backup = actions.add_parser("backup", help="dump every database into one archive")
    backup.add_argument("--checkout", required=True)
    backup.add_argument("--namespace", required=True)
    backup.add_argument("--target", type=Path, required=True)
    backup.add_argument("--retention", type=int, required=True)
    backup.add_argument("--capacity", default="")
    load = actions.add_parser("restore", help="load an archive into empty databases")
    load.add_argument("--source", type=Path, required=True)
    load.add_argument("--archive", default="latest")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)
    try:
        sources = [Source.from_env(database) for database in args.databases]
        if args.action == "backup":
            if args.retention < 1:
                raise BackupError(f"--retention: {args.retention} must be at least 1")
            report = dump(
                sources,
                args.target,
                checkout=args.checkout,
                namespace=args.namespace,
                retention=args.retention,
                capacity=quantity_bytes(args.capacity) if args.capacity else None,
                timeout=args.timeout,
            )
        else:
            report = restore(sources, find_archive(args.source, args.archive), timeout=args.timeout)
    except BackupError as exc:
        print(f"checkout_backup {args.action}: {exc}", file=sys.stderr)
        write_report({"ok": False, "action": args.action, "error": str(exc)}, args.report)
        return 1
    write_report(report, args.report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
