"""What the annotations on a Checkout ask of its keyrings' rotation, removed once acted on:

- ``checkout.platform.io/rotate: jwt | internal | all`` - rotate now;
- ``checkout.platform.io/rotate-emergency: <kid>[,<kid>...]`` - remove compromised keys at once.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from services.keys.report import RingName
from services.keys.rotation import RingView

from .values import GROUP

RINGS: tuple[RingName, ...] = ("jwt", "internal")
ROTATE_ANNOTATION = f"{GROUP}/rotate"
EMERGENCY_ANNOTATION = f"{GROUP}/rotate-emergency"


def asks_for_rotation(annotations: Mapping[str, str]) -> bool:
    return ROTATE_ANNOTATION in annotations or EMERGENCY_ANNOTATION in annotations


@dataclass(frozen=True)
class Request:
    """What the annotations on the Checkout ask for."""

    rotate: frozenset[RingName] = frozenset()
    compromised: Mapping[RingName, tuple[str, ...]] = field(default_factory=dict)
    problems: tuple[str, ...] = ()
    present: tuple[str, ...] = ()
    """The annotations to remove once acted on."""


def read_request(annotations: Mapping[str, str], views: Mapping[RingName, RingView]) -> Request:
    present = tuple(a for a in (ROTATE_ANNOTATION, EMERGENCY_ANNOTATION) if a in annotations)
    problems: list[str] = []
    rotate: set[RingName] = set()
    value = annotations.get(ROTATE_ANNOTATION)
    if value is not None:
        word = value.strip().lower()
        if word in ("jwt", "internal"):
            rotate.add("jwt" if word == "jwt" else "internal")
        elif word in ("all", "true", ""):
            rotate.update(RINGS)
        else:
            problems.append(
                f"{ROTATE_ANNOTATION}={value!r} is not one of jwt, internal, all; ignored"
            )
    compromised: dict[RingName, list[str]] = {}
    kids = annotations.get(EMERGENCY_ANNOTATION)
    if kids is not None:
        for kid in (k.strip() for k in kids.split(",")):
            if not kid:
                continue
            ring = next((r for r, view in views.items() if kid in view.kids), None)
            if ring is None:
                problems.append(f"{EMERGENCY_ANNOTATION}: {kid} is in neither keyring; ignored")
            else:
                compromised.setdefault(ring, []).append(kid)
    return Request(
        rotate=frozenset(rotate),
        compromised={ring: tuple(kids) for ring, kids in compromised.items()},
        problems=tuple(problems),
        present=present,
    )
