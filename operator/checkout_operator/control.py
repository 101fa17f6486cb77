"""What the annotations on a Checkout ask of the operator itself (day 2), kept until removed:

- ``checkout.platform.io/paused: "true"`` - reconciliation paused: neither the spec nor drift
  (a deleted Service, an edited Deployment) is applied, and no key rotation starts or steps,
  until the annotation is removed (or set to ``"false"``); the status says so (phase
  ``Paused``, condition ``Paused``).
- ``checkout.platform.io/hibernate: "true"`` - every workload (the services, the storefront,
  their databases) scaled to zero, with no autoscaler; the volume claims and Secrets are kept,
  so waking (removing the annotation) brings back the same data. Key rotation waits meanwhile
  (there are no pods to load new keys). Phase ``Hibernated`` once no pod is left.

Any other value is refused, naming the annotation, in the Checkout's status.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from .values import GROUP

PAUSED_ANNOTATION = f"{GROUP}/paused"
HIBERNATE_ANNOTATION = f"{GROUP}/hibernate"
CONTROL_ANNOTATIONS = (PAUSED_ANNOTATION, HIBERNATE_ANNOTATION)
_WORDS = {"true": True, "false": False}


class ControlError(ValueError):
    """An annotation of this module with a value other than "true" or "false"."""


@dataclass(frozen=True)
class Control:
    paused: bool = False
    hibernate: bool = False

    @property
    def holds_rotation(self) -> bool:
        return self.paused or self.hibernate


def read_control(annotations: Mapping[str, str] | None) -> Control:
    """The day-2 switches of a Checkout's annotations; `ControlError` for a bad value."""
    found: dict[str, bool] = {}
    for annotation in CONTROL_ANNOTATIONS:
        value = (annotations or {}).get(annotation)
        if value is None:
            found[annotation] = False
            continue
        word = _WORDS.get(value.strip().lower())
        if word is None:
            raise ControlError(
                f'metadata.annotations[{annotation!r}]: {value!r} is not "true" or "false"'
            )
        found[annotation] = word
    return Control(paused=found[PAUSED_ANNOTATION], hibernate=found[HIBERNATE_ANNOTATION])


def control_of(body: Mapping[str, object]) -> Control:
    meta = body.get("metadata")
    annotations = meta.get("annotations") if isinstance(meta, Mapping) else None
    return read_control(annotations if isinstance(annotations, Mapping) else None)
