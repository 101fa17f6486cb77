# The platform on a local kind cluster; the steps live in scripts/cluster.sh (docs/kubernetes.md).
# Needs Docker and kind; where they are missing these targets say so and point to `make dev`.
.PHONY: up down cluster url e2e e2e-phases

up:      ## kind cluster + Traefik, images built and loaded, operator, sample Checkout; prints the URL
	@bash scripts/cluster.sh up

down:    ## delete the kind cluster
	@bash scripts/cluster.sh down

cluster: ## only the kind cluster and Traefik, e.g. for skaffold dev
	@bash scripts/cluster.sh cluster

url:     ## the URL of the platform on the kind cluster
	@bash scripts/cluster.sh url

# Only the cluster tests (tests/cluster, tests/e2e_kind, then tests/e2e_skaffold alone, as the
# last phases of `make test`) on the test cluster checkout-test, deleted afterwards unless
# CHECKOUT_KEEP_CLUSTER=1. Skips, with the reason, where no Docker engine can be had.
e2e: venv
	bash k8s/offline/engine/engine.sh run $(MAKE) --no-print-directory e2e-phases

e2e-phases:
	@status=0; \
	export CHECKOUT_TEST_RUN_ID="$${CHECKOUT_TEST_RUN_ID:-$$(date +%s)-$$$$}"; \
	CHECKOUT_KEEP_CLUSTER=1 $(VENV)/bin/pytest tests/cluster tests/e2e_kind -n 2 --dist loadfile -v \
	    || status=$$?; \
	$(VENV)/bin/pytest -p no:xdist tests/e2e_skaffold -v || status=$$?; \
	exit $$status
