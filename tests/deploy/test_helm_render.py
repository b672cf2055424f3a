"""The chart rendered by Helm's own template engine, offline.

Through helm-python-sdk (Helm v4's Go SDK behind a C ABI, no helm binary and
no cluster), one of the test extras. Nothing here is applied to a cluster."""

from __future__ import annotations

import helm_python as helm
import pytest
import yaml

from tests.deploy.conftest import CHART, known_variable


def render(values: dict | None = None) -> dict[tuple[str, str], dict]:
    """(kind, name) -> object, for release `reg` in namespace `registry`."""
    chart = helm.Chart.load(CHART)
    manifests = chart.render(
        values or {}, name="reg", namespace="registry", is_install=True
    )
    objects = {}
    for path, text in manifests.items():
        if path.endswith("NOTES.txt"):
            continue
        for document in yaml.safe_load_all(text):
            if document:
                objects[(document["kind"], document["metadata"]["name"])] = document
    return objects


def container_env(objects, deployment: str) -> dict[str, dict]:
    spec = objects[("Deployment", deployment)]["spec"]["template"]["spec"]
    return {item["name"]: item for item in spec["containers"][0]["env"]}


def config(objects) -> dict[str, str]:
    return objects[("ConfigMap", "reg-dockyard")]["data"]


S3_EXTERNAL = {
    "persistence": {
        "imageChartStorage": {
            "type": "s3",
            "s3": {
                "bucket": "images",
                "rootdirectory": "/dockyard",
                "regionendpoint": "http://minio.storage:9000",
                "accesskey": "AKIAEXAMPLE",
                "secretkey": "not-a-real-secret",
            },
        }
    },
    "database": {
        "type": "external",
        "external": {"host": "pg.db", "existingSecret": "pg-credentials"},
    },
    "redis": {
        "type": "external",
        "external": {
            "addr": "redis.cache:6379",
            "password": "pw",
            "tlsOptions": {"enable": True},
        },
    },
    "core": {"replicas": 3},
    "jobservice": {"replicas": 2},
}


def test_defaults_render_serve_worker_service_ingress_secrets_and_storage():
    objects = render()

    assert {
        ("Deployment", "reg-dockyard-core"),
        ("Deployment", "reg-dockyard-jobservice"),
        ("Service", "reg-dockyard"),
        ("Ingress", "reg-dockyard"),
        ("ConfigMap", "reg-dockyard"),
        ("Secret", "reg-dockyard-secret"),
        ("Secret", "reg-dockyard-token"),
        ("PersistentVolumeClaim", "reg-dockyard-registry"),
        ("StatefulSet", "reg-dockyard-database"),
        ("StatefulSet", "reg-dockyard-redis"),
    } <= set(objects)


def test_defaults_point_dockyard_at_internal_postgres_redis_and_the_claim():
    objects = render()

    env = container_env(objects, "reg-dockyard-core")
    assert env["DOCKYARD_DATABASE_URL"]["value"] == (
        "postgresql://dockyard:$(DATABASE_PASSWORD)@reg-dockyard-database:5432/dockyard"
    )
    assert env["DOCKYARD_REDIS_URL"]["value"] == "redis://reg-dockyard-redis:6379/0"
    assert config(objects)["DOCKYARD_STORAGE_URL"] == "file:///storage"


def test_every_dockyard_variable_rendered_is_one_dockyard_reads():
    objects = render(S3_EXTERNAL | {"metrics": {"enabled": True}})

    names = set(config(objects)) | set(container_env(objects, "reg-dockyard-core"))
    assert all(known_variable(n) for n in names if n.startswith("DOCKYARD_"))


def test_external_services_and_s3_render_urls_credentials_and_no_local_state():
    objects = render(S3_EXTERNAL)

    env = container_env(objects, "reg-dockyard-core")
    assert config(objects)["DOCKYARD_STORAGE_URL"] == "s3://images/dockyard"
    assert config(objects)["DOCKYARD_S3_ENDPOINT_URL"] == "http://minio.storage:9000"
    assert env["AWS_SECRET_ACCESS_KEY"]["valueFrom"]["secretKeyRef"]["key"] == (
        "AWS_SECRET_ACCESS_KEY"
    )
    assert env["DATABASE_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == (
        "pg-credentials"
    )
    assert env["DOCKYARD_REDIS_URL"]["value"] == (
        "rediss://:$(REDIS_PASSWORD)@redis.cache:6379/0"
    )
    assert not {kind for kind, _ in objects} & {"PersistentVolumeClaim", "StatefulSet"}


def test_replicas_per_component_are_set_on_their_deployments():
    objects = render(S3_EXTERNAL)

    assert objects[("Deployment", "reg-dockyard-core")]["spec"]["replicas"] == 3
    assert objects[("Deployment", "reg-dockyard-jobservice")]["spec"]["replicas"] == 2


def test_filesystem_storage_with_replicas_on_read_write_once_is_refused():
    with pytest.raises(helm.HelmRenderError, match="ReadWriteMany"):
        render({"core": {"replicas": 2}})


def test_filesystem_storage_with_existing_claim_mounts_it_and_makes_none():
    objects = render(
        {
            "persistence": {
                "persistentVolumeClaim": {"registry": {"existingClaim": "shared-rwx"}}
            },
            "core": {"replicas": 2},
        }
    )

    spec = objects[("Deployment", "reg-dockyard-core")]["spec"]["template"]["spec"]
    claims = [
        v["persistentVolumeClaim"]["claimName"]
        for v in spec["volumes"]
        if "persistentVolumeClaim" in v
    ]
    assert claims == ["shared-rwx"]
    assert ("PersistentVolumeClaim", "reg-dockyard-registry") not in objects


def test_ingress_with_tls_uses_the_secret_and_the_host():
    objects = render()

    ingress = objects[("Ingress", "reg-dockyard")]["spec"]
    assert ingress["tls"] == [
        {"hosts": ["dockyard.example.com"], "secretName": "dockyard-tls"}
    ]
    assert ingress["rules"][0]["host"] == "dockyard.example.com"


def test_cluster_ip_exposure_renders_no_ingress():
    objects = render({"expose": {"type": "clusterIP"}})

    assert "Ingress" not in {kind for kind, _ in objects}


def test_metrics_enabled_get_their_own_port_and_service_not_the_ingress():
    objects = render({"metrics": {"enabled": True}})

    assert config(objects)["DOCKYARD_METRICS__LISTEN"] == "0.0.0.0:9090"
    assert ("Service", "reg-dockyard-metrics") in objects
    backend = objects[("Ingress", "reg-dockyard")]["spec"]["rules"][0]["http"]
    assert backend["paths"][0]["backend"]["service"]["name"] == "reg-dockyard"


@pytest.mark.parametrize(
    ("storage", "url"),
    [
        ({"type": "gcs", "gcs": {"bucket": "g", "encodedkey": "e30="}}, "gs://g"),
        (
            {
                "type": "azure",
                "azure": {"container": "c", "accountname": "a", "accountkey": "k"},
            },
            "az://c",
        ),
    ],
)
def test_gcs_and_azure_storage_render_their_urls(storage, url):
    objects = render({"persistence": {"imageChartStorage": storage}})

    assert config(objects)["DOCKYARD_STORAGE_URL"] == url


def test_generated_token_key_is_one_dockyard_loads(tmp_path):
    import base64

    from dockyard.auth.keys import load_signing_key

    data = render()[("Secret", "reg-dockyard-token")]["data"]
    for name in ("token.key", "token.crt"):
        (tmp_path / name).write_bytes(base64.b64decode(data[name]))

    key = load_signing_key(tmp_path)

    assert key.certificate.public_key() == key.public_key


def test_generated_credential_key_is_one_dockyard_loads(tmp_path):
    import base64

    from dockyard.replication.credentials import KEY_FILE, load_credential_box

    data = render()[("Secret", "reg-dockyard-token")]["data"]
    (tmp_path / KEY_FILE).write_bytes(base64.b64decode(data[KEY_FILE]))

    box = load_credential_box(tmp_path)

    assert box.open(box.seal("s3cret")) == "s3cret"


def test_helm_lint_strict_finds_no_error_or_warning():
    report = helm.lint(CHART, strict=True)

    assert report["errors"] == []
    assert [m for m in report["messages"] if m["severity"] >= 2] == []
