"""``helm template`` of the service charts: the charts are the only source of manifests."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

# helm's messages for values a chart refuses: its values.schema.json, `required` or `fail`.
_VALUE_ERRORS = ("values don't meet the specifications", "execution error at")


class RenderError(Exception):
    """helm could not render a chart. ``permanent``: the values are at fault, not the moment."""

    def __init__(self, message: str, *, permanent: bool) -> None:
        super().__init__(message)
        self.permanent = permanent


class ChartRenderer:
    def __init__(self, helm_binary: Path, charts_dir: Path, *, timeout: float = 60.0) -> None:
        self.helm_binary = helm_binary
        self.charts_dir = charts_dir
        self.timeout = timeout

    async def render(
        self, chart: str, *, release: str, namespace: str, values: Mapping[str, Any]
    ) -> list[dict[str, Any]]:
        """The chart's objects (empty documents dropped), values passed on stdin."""
        argv = [
            str(self.helm_binary),
            "template",
            release,
            str(self.charts_dir / chart),
            "--namespace",
            namespace,
            "--values",
            "-",
        ]
        try:
            process = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
        except OSError as exc:
            raise RenderError(
                f"cannot run helm ({self.helm_binary}): {exc}", permanent=False
            ) from exc
        try:
            # JSON is YAML: no second serialiser needed for the values.
            stdout, stderr = await asyncio.wait_for(
                process.communicate(json.dumps(values).encode()), self.timeout
            )
        except BaseException:
            # Timed out or cancelled (operator shutdown): never leave helm running.
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
            raise
        if process.returncode != 0:
            message = stderr.decode(errors="replace").strip()
            permanent = any(marker in message for marker in _VALUE_ERRORS)
            raise RenderError(f"helm template {chart}: {message}", permanent=permanent)
        return [doc for doc in yaml.safe_load_all(stdout) if doc]

    async def render_many(
        self, values_by_chart: Mapping[str, Mapping[str, Any]], *, release: str, namespace: str
    ) -> dict[str, list[dict[str, Any]]]:
        """Render several charts at once (one helm process each)."""
        # A TaskGroup cancels the other renders (and so kills their helm) when one fails.
        try:
            async with asyncio.TaskGroup() as group:
                tasks = {
                    chart: group.create_task(
                        self.render(chart, release=release, namespace=namespace, values=values)
                    )
                    for chart, values in values_by_chart.items()
                }
        except* RenderError as failures:
            # Report the first chart that failed, in words, rather than an exception group.
            raise failures.exceptions[0] from None
        return {chart: task.result() for chart, task in tasks.items()}
