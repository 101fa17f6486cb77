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
- `schedule` - when a keyring is due: key age or a cron expression (pure);
- `rotation_request` - what the annotations on a ``Checkout`` ask of its rotation (pure);
- `rotation_status` - the rotation's part of the status (pure);
- `keyring_secret` - a keyring Secret as the store of `services.keys.driver` (ring and state);
- `pods` - the service pods asked for their key reports;
- `rotation` - the keyrings' rotation: a loop per Checkout around `services.keys.driver`;
- `restore` - what ``spec.restore`` restores and how far it got (pure);
- `backups` - the backup and restore Jobs' outcomes in the status, and ``CheckoutBackup``;
- `handlers` - every kopf handler (the one module to read for what the operator watches) and
  the operator's settings.
"""

from . import handlers as handlers
