# The platform on a local kind cluster; the steps live in scripts/cluster.sh (docs/kubernetes.md).
# Needs Docker and kind; where they are missing these targets say so and point to `make dev`.
.PHONY: up down cluster url e2e

up:      ## kind cluster + ingress-nginx, images built and loaded, operator, sample Checkout; prints the URL
	@bash scripts/cluster.sh up

down:    ## delete the kind cluster
	@bash scripts/cluster.sh down

cluster: ## only the kind cluster and ingress-nginx, e.g. for skaffold dev
	@bash scripts/cluster.sh cluster

url:     ## the URL of the platform on the kind cluster
	@bash scripts/cluster.sh url

# Register, sign in, add to cart and check out through the ingress of a kind cluster (made by
# `make up` when there is none, and deleted afterwards unless CHECKOUT_E2E_KEEP=1). Skips, with
# the reason, where Docker or kind is missing.
e2e: venv
	CHECKOUT_E2E=1 $(VENV)/bin/pytest tests/e2e_kind -m e2e -p no:xdist -v -s
