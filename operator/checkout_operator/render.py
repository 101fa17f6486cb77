"""``helm template`` of the service charts: the charts are the only source of manifests.

A Checkout's charts are rendered by one helm process: a private chart with no templates of its
own holds copies of them as subcharts (``helm template`` of it gives each subchart its values under
its name, objects for objects the same as one render per chart; helm's start-up is most of a
render's cost: about 110 ms of CPU for the five charts at once against 310 ms one by one). Should
that render fail, each chart is rendered on its own, so an error names the chart that refused.
At most ``parallelism`` helm processes run at once (a hundred Checkouts created together do not
start hundreds), and `render_digest` names what a render depends on, so the caller renders again
only when that changed.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

BUNDLE_CHART = "checkout-render"
_DOCUMENT_SEPARATOR = re.compile(r"^---\s*$", re.MULTILINE)
_SOURCE = re.compile(rf"^# Source: {BUNDLE_CHART}/charts/([^/]+)/", re.MULTILINE)

# libyaml's parser when PyYAML has it: helm's output of a Checkout parses about ten times faster.
_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

# helm's messages for values a chart refuses: its values.schema.json, `required` or `fail`.
_VALUE_ERRORS = ("values don't meet the specifications", "execution error at")


class RenderError(Exception):
    """helm could not render a chart. ``permanent``: the values are at fault, not the moment."""

    def __init__(self, message: str, *, permanent: bool) -> None:
        super().__init__(message)
        self.permanent = permanent


def charts_digest(charts_dir: Path) -> str:
    """A digest of every file under ``charts_dir`` (versions, templates, built dependencies)."""
    digest = hashlib.sha256()
    for path in sorted(p for p in charts_dir.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(charts_dir)).encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


class ChartRenderer:
    def __init__(
        self,
        helm_binary: Path,
        charts_dir: Path,
        *,
        timeout: float = 60.0,
        parallelism: int | None = None,
    ) -> None:
        self.helm_binary = helm_binary
        self.charts_dir = charts_dir
        self.timeout = timeout
        self.slots = asyncio.Semaphore(parallelism or os.cpu_count() or 2)
        self.renders = 0
        """helm processes started, for the liveness endpoint and the tests."""
        self._charts_digest: str | None = None
        self._bundles: dict[tuple[str, ...], Path] = {}

    def render_digest(self, values_by_chart: Mapping[str, Mapping[str, Any]], **extra: str) -> str:
        """What `render_many` of these values gives depends on, as one digest: the values (the
        spec, default images and the operator's settings are in them), the charts' files and
        the helm binary; ``extra`` (release, namespace) too."""
        if self._charts_digest is None:
            self._charts_digest = charts_digest(self.charts_dir)
        inputs = {
            "values": values_by_chart,
            "charts": self._charts_digest,
            "helm": str(self.helm_binary),
            **extra,
        }
        return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()

    async def render(
        self, chart: str, *, release: str, namespace: str, values: Mapping[str, Any]
    ) -> list[dict[str, Any]]:
        """The chart's objects (empty documents dropped), values passed on stdin."""
        stdout = await self._helm_template(
            chart, self.charts_dir / chart, release, namespace, values
        )
        return [doc for doc in yaml.load_all(stdout, Loader=_Loader) if doc]

    def close(self) -> None:
        """Remove the bundle charts made so far."""
        for bundle in self._bundles.values():
            shutil.rmtree(bundle.parent, ignore_errors=True)
        self._bundles.clear()

    def _bundle(self, charts: tuple[str, ...]) -> Path:
        """A chart holding copies of ``charts`` as its subcharts, made once per set of charts."""
        bundle = self._bundles.get(charts)
        if bundle is None:
            bundle = Path(tempfile.mkdtemp(prefix="checkout-render-")) / BUNDLE_CHART
            for chart in charts:
                shutil.copytree(self.charts_dir / chart, bundle / "charts" / chart, symlinks=True)
            (bundle / "Chart.yaml").write_text(
                f"apiVersion: v2\nname: {BUNDLE_CHART}\nversion: 0.0.0\n"
                "description: the charts of one Checkout, rendered by one helm process\n"
            )
            self._bundles[charts] = bundle
        return bundle

    async def _render_bundle(
        self, values_by_chart: Mapping[str, Mapping[str, Any]], *, release: str, namespace: str
    ) -> dict[str, list[dict[str, Any]]]:
        charts = tuple(sorted(values_by_chart))
        stdout = await self._helm_template(
            BUNDLE_CHART, self._bundle(charts), release, namespace, values_by_chart
        )
        rendered: dict[str, list[dict[str, Any]]] = {chart: [] for chart in values_by_chart}
        # helm heads each document with "# Source: <bundle>/charts/<chart>/templates/...".
        for document in _DOCUMENT_SEPARATOR.split(stdout.decode()):
            source = _SOURCE.search(document)
            obj = yaml.load(document, Loader=_Loader)  # noqa: S506  (a safe loader)
            if not obj:
                continue
            if source is None or source[1] not in rendered:
                raise RenderError(
                    f"helm template: an object from no chart: {document[:200]}", permanent=False
                )
            rendered[source[1]].append(obj)
        return rendered

    async def _helm_template(
        self,
        chart: str,
        path: Path,
        release: str,
        namespace: str,
        values: Mapping[str, Any],
    ) -> bytes:
        argv = [
            str(self.helm_binary),
            "template",
            release,
            str(path),
            "--namespace",
            namespace,
            "--values",
            "-",
        ]
        async with self.slots:
            return await self._run(chart, argv, values)

    async def _run(self, chart: str, argv: list[str], values: Mapping[str, Any]) -> bytes:
        self.renders += 1
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
        return stdout

    async def render_many(
        self, values_by_chart: Mapping[str, Mapping[str, Any]], *, release: str, namespace: str
    ) -> dict[str, list[dict[str, Any]]]:
        """Render several charts: by one helm process, or one each to name the one that fails."""
        if len(values_by_chart) > 1:
            with contextlib.suppress(RenderError):
                return await self._render_bundle(
                    values_by_chart, release=release, namespace=namespace
                )
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
