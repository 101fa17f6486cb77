"""The Checkout operator: turns each ``Checkout`` (checkout.platform.io/v1alpha1) into the four
services of the Checkout Platform, rendered from their Helm charts and owned by the ``Checkout``.

``kopf run -m checkout_operator`` imports this package, which registers the handlers.

Layers, from pure to effectful:

- `config` - the operator's settings, read once from the environment;
- `spec` - a ``Checkout``'s spec decoded once into typed Structs, its defaults in one place;
- `values` - a ``Checkout`` spec turned into chart values, names and URLs (pure);
- `status` - conditions and phase from the children's state (pure);
- `generated_secrets` - the keyring, database-credential and CSRF Secrets (random, not from a
  chart), created once and never overwritten;
- `render` - ``helm template`` of the service charts, the only source of manifests;
- `kube` - a small async client of the Kubernetes API (server-side apply, list, delete);
- `children` - apply, compare, prune and delete what a ``Checkout`` owns;
- `reconcile` - one reconcile of one ``Checkout``, its status, and its deletion;
- `handlers` - the thin kopf handlers and the operator's settings;
- `schedule` - when a keyring is due: key age or a cron expression (pure);
- `rotation` - the keyrings' rotation: a daemon per Checkout driving `services.keys.rotation`.
"""

from . import handlers as handlers
from . import rotation as rotation
