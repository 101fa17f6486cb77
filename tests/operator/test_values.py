"""The pure parts of the operator, without a cluster: spec to chart values, status from
children, the Secrets it makes, and its settings."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest
from checkout_operator.children import is_subset
from checkout_operator.config import ConfigError, OperatorConfig
from checkout_operator.generated_secrets import wanted_secrets
from checkout_operator.spec import decode_spec
from checkout_operator.status import (
    Health,
    deployment_health,
    healthy_status,
    merge_conditions,
    retired_conditions,
    service_states,
    statefulset_health,
    status_patch,
)
from checkout_operator.values import (
    BACKUP,
    SERVICES,
    WORKLOADS,
    Release,
    RestorePlan,
    all_workload_values,
    backup_claim_manifest,
    enabled_workloads,
    ingress_url,
    parse_image,
    service_values,
    storefront_values,
)

from services.keys.keyring import parse_keyring

DEFAULT_IMAGES = {w: f"registry.example.com/{w}:1.0.0" for w in WORKLOADS}


def values_for(spec: dict[str, Any], service: str = "auth") -> dict[str, Any]:
    return service_values(
        service, Release("shop", "prod", decode_spec(spec), default_images=DEFAULT_IMAGES)
    )


@pytest.mark.parametrize(
    ("reference", "expected"),
    [
        ("mongo:7.0.14", {"repository": "mongo", "tag": "7.0.14"}),
        ("registry:5000/team/mongo:7", {"repository": "registry:5000/team/mongo", "tag": "7"}),
        ("registry:5000/team/mongo", {"repository": "registry:5000/team/mongo"}),
        ("mongo@sha256:" + "a" * 64, {"repository": "mongo", "digest": "sha256:" + "a" * 64}),
    ],
)
def test_parse_image(reference: str, expected: dict[str, str]) -> None:
    assert parse_image(reference) == expected


def test_every_service_is_wired_to_every_other() -> None:
    values = all_workload_values(
        Release(
            "shop",
            "prod",
            decode_spec({}),
            default_images=DEFAULT_IMAGES,
            cluster_domain="corp.local",
        )
    )
    assert set(values) == set(WORKLOADS)
    for chart, chart_values in values.items():
        assert chart_values["serviceUrls"] == {
            s: f"http://shop-{s}.prod.svc.corp.local:80" for s in SERVICES
        }
        if chart in SERVICES:
            assert chart_values["keyrings"] == {
                "jwt": {"secretName": "shop-jwt-keyring"},
                "internal": {"secretName": "shop-internal-keyring"},
            }
    # The storefront mounts no keyring and has no database: it gets its CSRF Secret only.
    storefront = values["storefront"]
    assert not {"keyrings", "mongodb", "jwt"} & set(storefront)
    assert storefront["csrf"] == {"existingSecret": "shop-storefront-csrf"}


def test_the_storefront_section_becomes_the_storefront_charts_values() -> None:
    spec = {
        "storefront": {
            "replicas": 2,
            "image": {"tag": "2.0.0"},
            "resources": {"requests": {"cpu": "20m"}},
            "autoscaling": {"enabled": True, "maxReplicas": 3},
        },
        "ingress": {"host": "shop.example.com", "tls": {"enabled": True, "secretName": "tls"}},
        "networkPolicy": {"ingressController": {"namespace": "edge"}},
    }
    values = storefront_values(
        Release("shop", "prod", decode_spec(spec), default_images=DEFAULT_IMAGES)
    )
    assert values["replicaCount"] == 2
    assert values["image"] == {"repository": "registry.example.com/storefront", "tag": "2.0.0"}
    assert values["resources"] == {"requests": {"cpu": "20m"}}
    assert values["autoscaling"]["enabled"] is True
    assert values["autoscaling"]["maxReplicas"] == 3
    # Its own Ingress ("/", the chart's default paths) on the services' host, with their TLS.
    assert values["ingress"] == values_for(spec, "cart")["ingress"]
    assert "paths" not in values["ingress"]
    # No operator in its NetworkPolicy: there are no keys to read from its pods.
    assert values["networkPolicy"]["ingressController"]["namespace"] == "edge"
    assert "operator" not in values["networkPolicy"]


@pytest.mark.parametrize(
    ("storefront", "expected"),
    [
        (None, WORKLOADS),
        ({}, WORKLOADS),
        ({"enabled": True}, WORKLOADS),
        ({"enabled": False}, SERVICES),
    ],
)
def test_the_storefront_is_enabled_unless_the_spec_says_otherwise(
    storefront: dict[str, Any] | None, expected: tuple[str, ...]
) -> None:
    spec = {} if storefront is None else {"storefront": storefront}
    assert enabled_workloads(decode_spec(spec)) == expected
    values = all_workload_values(
        Release(
            "shop",
            "prod",
            decode_spec(spec),
        )
    )
    assert tuple(values) == expected
    assert retired_conditions(expected) == (
        () if expected == WORKLOADS else ("StorefrontAvailable",)
    )


def test_spec_fields_become_chart_values() -> None:
    spec = {
        "services": {
            "auth": {
                "replicas": 3,
                "image": {"tag": "2.0.0"},
                "resources": {"limits": {"memory": "1Gi"}},
                "autoscaling": {"enabled": True, "minReplicas": 3, "maxReplicas": 9},
            }
        },
        "mongodb": {
            "image": "mirror.example.com/mongo:7.0.14",
            "storage": {"size": "5Gi", "className": "fast"},
            "keepDataOnDelete": False,
        },
        "ingress": {
            "host": "shop.example.com",
            "tls": {"enabled": True, "secretName": "tls"},
            "trustedProxies": ["10.244.0.0/16", "fd00::1"],
        },
        "secretRotation": {"tokenLifetimeSeconds": 600},
    }
    values = values_for(spec)
    # Every service trusts the ingress controller's X-Forwarded-For, and nothing else does.
    assert values["trustedProxies"] == values_for(spec, "order")["trustedProxies"]
    assert values["trustedProxies"] == ["10.244.0.0/16", "fd00::1"]
    assert values_for({})["trustedProxies"] == []
    # NetworkPolicies: on by default, letting in Traefik's pods; the operator's namespace only
    # when it knows it (else the charts' default stands).
    assert values_for({})["networkPolicy"] == {
        "enabled": True,
        "ingressController": {
            "namespace": "traefik",
            "podLabels": {"app.kubernetes.io/name": "traefik"},
        },
    }
    policy = {"enabled": False, "ingressController": {"namespace": "edge", "podLabels": {"a": "b"}}}
    assert service_values(
        "cart",
        Release(
            "shop",
            "prod",
            decode_spec({"networkPolicy": policy}),
            default_images=DEFAULT_IMAGES,
            operator_namespace="ops",
        ),
    )["networkPolicy"] == {**policy, "operator": {"namespace": "ops"}}
    assert values["replicaCount"] == 3
    # A tag alone keeps the operator's default repository.
    assert values["image"] == {"repository": "registry.example.com/auth", "tag": "2.0.0"}
    assert values["resources"] == {"limits": {"memory": "1Gi"}}
    assert values["autoscaling"] == {
        "enabled": True,
        "minReplicas": 3,
        "maxReplicas": 9,
        "targetCPUUtilizationPercentage": 75,
    }
    assert values["mongodb"] == {
        "engine": "mongodb",
        "auth": {"existingSecret": "shop-auth-mongodb"},
        # keepDataOnDelete: false is the operator's to carry out (with the Checkout); the
        # StatefulSet keeps its claims when it alone is deleted.
        "storage": {"size": "5Gi", "className": "fast", "retainOnDelete": True},
        "engines": {
            "mongodb": {
                "image": {"repository": "mirror.example.com/mongo", "tag": "7.0.14", "digest": ""}
            }
        },
    }
    assert values["ingress"] == {
        "enabled": True,
        "className": "traefik",
        "host": "shop.example.com",
        "tls": {"enabled": True, "secretName": "tls"},
    }
    assert values["jwt"] == {"accessTokenTtlSeconds": 600}
    assert "jwt" not in values_for(spec, "cart")  # only auth issues tokens
    assert ingress_url(decode_spec(spec)) == "https://shop.example.com"


def test_without_an_image_anywhere_the_chart_default_stands() -> None:
    values = service_values(
        "cart",
        Release(
            "shop",
            "prod",
            decode_spec({}),
        ),
    )
    assert "image" not in values


def test_without_a_database_image_the_charts_default_for_the_engine_stands() -> None:
    for engine in (None, "mongodb", "ferretdb"):
        spec = {"mongodb": {"engine": engine}} if engine else {}
        values = values_for(spec)["mongodb"]
        assert values["engine"] == (engine or "mongodb")
        assert "engines" not in values


def test_database_resources_go_to_the_engine_in_use() -> None:
    spec = {
        "mongodb": {
            "engine": "ferretdb",
            "resources": {"requests": {"cpu": "10m"}, "limits": {"memory": "256Mi"}},
        }
    }
    engines = values_for(spec)["mongodb"]["engines"]
    assert engines == {
        "ferretdb": {"resources": {"requests": {"cpu": "10m"}, "limits": {"memory": "256Mi"}}}
    }
    assert "engines" not in values_for({"mongodb": {"engine": "ferretdb"}})["mongodb"]


def test_a_ferretdb_spec_becomes_the_charts_engine() -> None:
    digest = "sha256:" + "e" * 64
    spec = {"mongodb": {"engine": "ferretdb", "image": f"mirror.example.com/ferretdb@{digest}"}}
    for service in SERVICES:
        values = values_for(spec, service)["mongodb"]
        assert values["engine"] == "ferretdb"
        # The same Secret as with MongoDB: the services' credentials do not depend on the engine.
        assert values["auth"] == {"existingSecret": f"shop-{service}-mongodb"}
        assert values["engines"] == {
            "ferretdb": {"image": {"repository": "mirror.example.com/ferretdb", "digest": digest}}
        }


def test_the_operators_database_image_for_the_engine_fills_in_for_the_spec() -> None:
    defaults = {"ferretdb": "mirror.example.com/ferretdb:1.24.2"}

    def database(spec: dict[str, Any]) -> dict[str, Any]:
        values = service_values(
            "order", Release("shop", "prod", decode_spec(spec), default_database_images=defaults)
        )
        return dict(values["mongodb"])

    mirrored = {"repository": "mirror.example.com/ferretdb", "tag": "1.24.2", "digest": ""}
    assert database({"mongodb": {"engine": "ferretdb"}})["engines"] == {
        "ferretdb": {"image": mirrored}
    }
    # Another engine's default is not used; the spec's own image wins.
    assert "engines" not in database({"mongodb": {"engine": "mongodb"}})
    own = database({"mongodb": {"engine": "ferretdb", "image": "r.example.com/fdb:1.24.2"}})
    assert own["engines"]["ferretdb"]["image"]["repository"] == "r.example.com/fdb"


@pytest.mark.parametrize(
    ("ingress", "url"),
    [
        ({}, None),
        ({"host": "a.example.com"}, "http://a.example.com"),
        ({"enabled": False, "host": "a.example.com"}, None),
    ],
)
def test_ingress_url(ingress: dict[str, Any], url: str | None) -> None:
    assert ingress_url(decode_spec({"ingress": ingress})) == url


def test_secrets_are_random_keyrings_in_the_services_format() -> None:
    first, second = wanted_secrets("shop", "prod"), wanted_secrets("shop", "prod")
    names = [s["metadata"]["name"] for s in first]
    assert names == [
        "shop-jwt-keyring",
        "shop-internal-keyring",
        *(f"shop-{s}-mongodb" for s in SERVICES),
        "shop-storefront-csrf",
    ]
    # The storefront's CSRF secret: 48 URL-safe characters, a new one each time.
    csrf = base64.b64decode(first[-1]["data"]["csrf-secret"]).decode()
    assert len(csrf) == 48 and csrf.replace("-", "").replace("_", "").isalnum()
    assert first[-1]["data"] != second[-1]["data"]
    assert first[-1]["metadata"]["labels"]["app.kubernetes.io/component"] == "csrf"
    # Without the storefront, no CSRF Secret.
    assert "shop-storefront-csrf" not in [
        s["metadata"]["name"] for s in wanted_secrets("shop", "prod", SERVICES)
    ]
    for secret, prefix in zip(first[:2], ("jwt-", "api-"), strict=True):
        active, keys = parse_keyring(base64.b64decode(secret["data"]["keyring.json"]))
        assert set(keys) == {active}
        assert active.startswith(prefix)
    assert first[0]["data"] != second[0]["data"]
    assert first[2]["data"]["mongodb-root-password"] != second[2]["data"]["mongodb-root-password"]


def deployment(
    generation: int,
    observed: int,
    available: int,
    wanted: int = 1,
    *,
    updated: int | None = None,
    replicas: int | None = None,
) -> dict[str, Any]:
    return {
        "metadata": {"name": "shop-auth", "generation": generation},
        "spec": {"replicas": wanted},
        "status": {
            "observedGeneration": observed,
            "replicas": available if replicas is None else replicas,
            "availableReplicas": available,
            "updatedReplicas": available if updated is None else updated,
            "conditions": [{"type": "Available", "status": "True" if available else "False"}],
        },
    }


def statefulset(ready: int, *, current: str = "r1", update: str = "r1") -> dict[str, Any]:
    return {
        "metadata": {"generation": 1},
        "spec": {"replicas": 1},
        "status": {
            "observedGeneration": 1,
            "readyReplicas": ready,
            "updatedReplicas": 1 if current == update else 0,
            "currentRevision": current,
            "updateRevision": update,
        },
    }


def test_deployment_availability() -> None:
    assert deployment_health(None).problem == "its Deployment does not exist"
    assert deployment_health(deployment(2, 1, 0)).problem == (
        "its Deployment's latest spec is not rolled out yet"
    )
    assert deployment_health(deployment(1, 1, 0)).problem == (
        "its Deployment has 0/1 replicas available"
    )
    assert deployment_health(deployment(1, 1, 1, wanted=2)).problem is not None
    assert deployment_health(deployment(1, 1, 2, wanted=2)) == Health()
    # Zero replicas (a restore holding the services, just let go) never serves.
    assert deployment_health(deployment(1, 1, 0, wanted=0)).problem == (
        "its Deployment is scaled to zero"
    )


def test_a_deployment_rolling_out_with_its_replicas_available_serves() -> None:
    """Ready means serving: a rollout that keeps the wanted replicas available (maxUnavailable 0)
    is rolling, not a problem; scaling up from fewer available replicas is a problem."""
    stale = deployment_health(deployment(2, 1, 1))
    assert stale == Health(rolling="its Deployment's latest spec is not rolled out yet")
    surge = deployment_health(deployment(2, 2, 1, updated=0, replicas=2))
    assert surge == Health(rolling="its Deployment has 0/1 replicas updated")
    old_left = deployment_health(deployment(2, 2, 1, updated=1, replicas=2))
    assert old_left == Health(rolling="its Deployment has 1 old replicas left")
    assert deployment_health(deployment(2, 1, 1, wanted=2)).problem == (
        "its Deployment's latest spec is not rolled out yet"
    )


def test_a_statefulset_serves_while_ready_and_rolls_until_its_revision() -> None:
    assert statefulset_health(None).problem == "its MongoDB StatefulSet does not exist"
    assert statefulset_health(statefulset(1)) == Health()
    assert statefulset_health(statefulset(0)).problem == "its MongoDB has 0/1 replicas ready"
    assert statefulset_health(statefulset(1, update="r2")) == Health(
        rolling="its MongoDB has 0/1 replicas updated"
    )


def test_ready_stays_true_through_a_rollout_and_the_phase_says_it_is_progressing() -> None:
    names = {w: f"shop-{w}" for w in WORKLOADS}
    mongo = {s: f"shop-{s}-mongodb" for s in SERVICES}
    deployments = {f"shop-{w}": deployment(1, 1, 1) for w in WORKLOADS}
    statefulsets = {f"shop-{s}-mongodb": statefulset(1) for s in SERVICES}
    deployments["shop-order"] = deployment(2, 2, 1, updated=0, replicas=2)
    states = service_states(
        deployments, statefulsets, deployment_names=names, statefulset_names=mongo
    )
    rolling = healthy_status(states, generation=4, url=None)
    ready = next(c for c in rolling["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "True"
    assert rolling["phase"] == "Progressing"
    assert (
        rolling["message"] == "serving; rolling out order: its Deployment has 0/1 replicas updated"
    )
    assert all(c["status"] == "True" for c in rolling["conditions"])
    deployments["shop-order"] = deployment(2, 2, 1)
    states = service_states(
        deployments, statefulsets, deployment_names=names, statefulset_names=mongo
    )
    done = healthy_status(states, generation=4, url=None)
    assert (done["phase"], done["message"]) == ("Ready", "")
    # Ready's transition time is kept through the rollout: its status never changed.
    merged = merge_conditions(
        merge_conditions([], rolling["conditions"], "t0"), done["conditions"], "t1"
    )
    assert next(c for c in merged if c["type"] == "Ready")["lastTransitionTime"] == "t0"


def test_conditions_are_replaced_by_type_and_keep_their_transition_time() -> None:
    existing = [
        {"type": "Ready", "status": "False", "lastTransitionTime": "t0"},
        {"type": "SecretsRotated", "status": "True", "lastTransitionTime": "t0"},
        {"type": "AuthAvailable", "status": "True", "lastTransitionTime": "t0"},
    ]
    new = [
        {"type": "Ready", "status": "True"},
        {"type": "AuthAvailable", "status": "True", "message": "again"},
    ]
    merged = {c["type"]: c for c in merge_conditions(existing, new, "t1")}
    assert merged["Ready"]["lastTransitionTime"] == "t1"  # changed
    assert merged["AuthAvailable"] == {
        "type": "AuthAvailable",
        "status": "True",
        "message": "again",
        "lastTransitionTime": "t0",
    }
    assert merged["SecretsRotated"]["lastTransitionTime"] == "t0"  # someone else's, kept


def test_the_same_status_twice_is_no_patch() -> None:
    names = {s: f"shop-{s}" for s in SERVICES}
    states = service_states({}, {}, deployment_names=names, statefulset_names=names)
    computed = healthy_status(states, generation=3, url="http://shop.example.com")
    assert computed["phase"] == "Progressing"
    assert "auth: its Deployment does not exist" in computed["message"]
    first = status_patch({}, computed, "t0")
    assert first is not None
    assert status_patch(first, computed, "t1") is None


def test_the_storefront_is_available_with_its_deployment_alone() -> None:
    """It has no StatefulSet: its Deployment decides its condition, and Ready waits for it."""
    deployments = {f"shop-{w}": deployment(1, 1, 1) for w in WORKLOADS}
    statefulsets = {f"shop-{s}-mongodb": statefulset(1) for s in SERVICES}
    states = service_states(
        deployments,
        statefulsets,
        deployment_names={w: f"shop-{w}" for w in WORKLOADS},
        statefulset_names={s: f"shop-{s}-mongodb" for s in SERVICES},
    )
    computed = healthy_status(states, generation=1, url=None)
    assert computed["phase"] == "Ready"
    types = [c["type"] for c in computed["conditions"]]
    assert types == ["Ready", *(f"{w.capitalize()}Available" for w in WORKLOADS)]
    deployments["shop-storefront"] = deployment(1, 1, 0)
    states = service_states(
        deployments,
        statefulsets,
        deployment_names={w: f"shop-{w}" for w in WORKLOADS},
        statefulset_names={s: f"shop-{s}-mongodb" for s in SERVICES},
    )
    waiting = healthy_status(states, generation=1, url=None)
    assert waiting["phase"] == "Progressing"
    assert waiting["message"] == "waiting for storefront: its Deployment has 0/1 replicas available"


def test_a_disabled_storefronts_condition_is_removed_not_left_stale() -> None:
    existing = [
        {"type": "Ready", "status": "True", "lastTransitionTime": "t0"},
        {"type": "StorefrontAvailable", "status": "True", "lastTransitionTime": "t0"},
        {"type": "SecretsRotated", "status": "True", "lastTransitionTime": "t0"},
    ]
    computed = {"phase": "Ready", "conditions": [{"type": "Ready", "status": "True"}]}
    patch = status_patch(
        {"phase": "Ready", "conditions": existing}, computed, "t1", retired=("StorefrontAvailable",)
    )
    assert patch is not None
    assert [c["type"] for c in patch["conditions"]] == ["Ready", "SecretsRotated"]


def test_subset_comparison() -> None:
    assert is_subset({"a": 1, "b": [{"c": 2}]}, {"a": 1, "b": [{"c": 2, "d": 3}], "e": 4})
    assert not is_subset({"b": [{"c": 2}]}, {"b": [{"c": 2}, {"c": 3}]})
    assert not is_subset({"a": 1}, {"a": "1"})


def test_settings_from_the_environment(tmp_path: Path) -> None:
    for chart in (*WORKLOADS, BACKUP):
        (tmp_path / chart).mkdir()
        (tmp_path / chart / "Chart.yaml").write_text("name: x\n")
    config = OperatorConfig.from_env(
        {
            "CHECKOUT_CHARTS_DIR": str(tmp_path),
            "HELM_BINARY": "/usr/local/bin/helm",
            "CHECKOUT_DEFAULT_IMAGE_AUTH": "checkout/auth:0.1.0",
            "CHECKOUT_DEFAULT_IMAGE_STOREFRONT": "checkout/storefront:0.1.0",
            "CHECKOUT_DEFAULT_DATABASE_IMAGE_FERRETDB": "mirror.example.com/ferretdb:1.24.2",
            "CHECKOUT_DRIFT_INTERVAL_SECONDS": "15",
            "POD_NAMESPACE": "checkout-system",
            "CHECKOUT_BACKUP_IMAGE": "checkout/operator:0.1.0",
        }
    )
    assert config.namespace == "checkout-system"
    assert config.backup_image == "checkout/operator:0.1.0"
    assert config.default_images == {
        "auth": "checkout/auth:0.1.0",
        "storefront": "checkout/storefront:0.1.0",
    }
    assert config.default_database_images == {"ferretdb": "mirror.example.com/ferretdb:1.24.2"}
    assert config.drift_interval == 15.0
    assert config.finalizer == "checkout.platform.io/finalizer"
    with pytest.raises(ConfigError, match="CHECKOUT_CHARTS_DIR"):
        OperatorConfig.from_env({})
    with pytest.raises(ConfigError, match="CHECKOUT_DRIFT_INTERVAL_SECONDS"):
        OperatorConfig.from_env(
            {"CHECKOUT_CHARTS_DIR": str(tmp_path), "CHECKOUT_DRIFT_INTERVAL_SECONDS": "soon"}
        )
    # Empty is unset (the class's default); every bad one is named at once.
    charts = {"CHECKOUT_CHARTS_DIR": str(tmp_path)}
    unset = OperatorConfig.from_env({**charts, "CHECKOUT_CLUSTER_DOMAIN": "", "POD_NAMESPACE": ""})
    assert (unset.cluster_domain, unset.namespace, unset.helm_parallelism) == (
        "cluster.local",
        None,
        None,
    )
    with pytest.raises(ConfigError) as caught:
        OperatorConfig.from_env(
            {**charts, "CHECKOUT_HELM_PARALLELISM": "0", "CHECKOUT_WAIT_DELAY_SECONDS": "1m"}
        )
    assert "CHECKOUT_HELM_PARALLELISM: Expected `int` >= 1 (got '0')" in str(caught.value)
    assert "CHECKOUT_WAIT_DELAY_SECONDS: Expected `float`" in str(caught.value)
    # Charts without the storefront's: the operator could not render what the CRD allows.
    (tmp_path / "storefront" / "Chart.yaml").unlink()
    with pytest.raises(ConfigError, match=r"holds no chart for \['storefront'\]"):
        OperatorConfig.from_env({"CHECKOUT_CHARTS_DIR": str(tmp_path)})


def test_spec_backup_becomes_the_backup_charts_values_and_its_claim() -> None:
    backup = {
        "schedule": "@daily",
        "timeZone": "Europe/Berlin",
        "retention": 4,
        "target": {"volumeClaim": {"size": "3Gi", "storageClassName": "fast"}},
    }
    spec = decode_spec({"backup": backup, "networkPolicy": {"enabled": False}})
    release = Release(
        "shop", "prod", spec, cluster_domain="corp.local", backup_image="r.example/op:1.2.3"
    )
    values = all_workload_values(release)[BACKUP]
    assert values == {
        "databases": list(SERVICES),
        "backup": {
            "enabled": True,
            "schedule": "@daily",
            "timeZone": "Europe/Berlin",
            "suspend": False,
            "retention": 4,
        },
        "target": {"claimName": "shop-backups", "capacity": "3Gi"},
        "restore": {"enabled": False},
        "clusterDomain": "corp.local",
        "networkPolicy": {"enabled": False},
        "image": {"repository": "r.example/op", "tag": "1.2.3"},
    }
    claim = backup_claim_manifest(release)
    assert claim is not None
    assert claim["metadata"]["name"] == "shop-backups" and claim["metadata"]["namespace"] == "prod"
    assert "checkout.platform.io/owner" not in claim["metadata"]["labels"]
    assert claim["spec"]["resources"] == {"requests": {"storage": "3Gi"}}
    assert claim["spec"]["storageClassName"] == "fast"
    # Hibernating: the CronJob is suspended through the chart's own value.
    hibernating = Release("shop", "prod", spec, hibernate=True)
    assert all_workload_values(hibernating)[BACKUP]["hibernate"] is True
    named = decode_spec({"backup": {"target": {"volumeClaim": {"name": "archives"}}}})
    assert all_workload_values(Release("shop", "prod", named))[BACKUP]["target"] == {
        "claimName": "archives",
        "capacity": "5Gi",
    }


def test_without_spec_backup_there_is_no_backup_chart_nor_claim() -> None:
    release = Release("shop", "prod", decode_spec({}))
    assert BACKUP not in all_workload_values(release)
    assert backup_claim_manifest(release) is None


def test_a_restore_holds_every_workload_and_renders_the_restore_job_values() -> None:
    spec = decode_spec({"restore": {"from": {"claimName": "old-backups"}}})
    plan = RestorePlan("old-backups", "old-20261207T030000.000Z.tar.gz")
    values = all_workload_values(Release("shop", "prod", spec, restore=plan))
    assert all(values[workload]["restoring"] is True for workload in WORKLOADS)
    assert "hibernate" not in values["auth"]  # the databases keep running
    backup = values[BACKUP]
    assert backup["restore"] == {
        "enabled": True,
        "claimName": "old-backups",
        "archive": "old-20261207T030000.000Z.tar.gz",
    }
    assert backup["backup"]["enabled"] is False  # no spec.backup: no CronJob
    # Restored: the same spec renders no restore and holds nothing.
    after = all_workload_values(Release("shop", "prod", spec))
    assert BACKUP not in after and all("restoring" not in after[w] for w in WORKLOADS)


def test_spec_observability_tracing_reaches_every_workload_only_when_on() -> None:
    assert "tracing" not in values_for({})
    assert decode_spec({}).observability.tracing.sample_ratio == 1.0
    spec = {
        "observability": {"tracing": {"otlpEndpoint": "http://jaeger.obs:4318", "sampleRatio": 0.1}}
    }
    wanted = {"otlpEndpoint": "http://jaeger.obs:4318", "sampleRatio": 0.1}
    for service in SERVICES:
        assert values_for(spec, service)["tracing"] == wanted
    release = Release("shop", "prod", decode_spec(spec), default_images=DEFAULT_IMAGES)
    assert storefront_values(release)["tracing"] == wanted
