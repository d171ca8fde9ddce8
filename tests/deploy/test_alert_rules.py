"""The alert and recording rules (deploy/prometheus/rules/cafeflow.yml): valid for promtool, unit-tested
(every alert fires on its series and stays quiet on a harmless neighbour), the same groups in compose and
in the Kubernetes PrometheusRule, and every runbook link a section of docs/operations.md."""
from __future__ import annotations

import re
import shutil
import subprocess
import sys

import yaml

from tests.deploy.manifests import K8S, load_compose
from tests.support import ROOT

RULES = ROOT / "deploy" / "prometheus" / "rules" / "cafeflow.yml"
RULE_TESTS = ROOT / "deploy" / "prometheus" / "tests" / "cafeflow.test.yml"
ALL_RULE_TESTS = sorted(RULE_TESTS.parent.glob("*.test.yml"))
PROMETHEUS_RULE = K8S / "base" / "monitoring" / "prometheusrule.yaml"
OPERATIONS = ROOT / "docs" / "operations.md"


def promtool() -> str:
    path = shutil.which("promtool")
    assert path, "promtool is needed (make test installs Debian's prometheus: scripts/ensure-prometheus.sh)"
    return path


def _alerts() -> dict[str, dict]:
    return {rule["alert"]: rule for group in yaml.safe_load(RULES.read_text())["groups"]
            for rule in group["rules"] if "alert" in rule}


def test_promtool_checks_the_rules():
    result = subprocess.run([promtool(), "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_unit_tests_pass():
    result = subprocess.run([promtool(), "test", "rules", *map(str, ALL_RULE_TESTS)], capture_output=True,
                            text=True, timeout=600, cwd=RULE_TESTS.parent)
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_unit_tests_would_catch_a_broken_alert(tmp_path):
    """The unit tests are live: an alert whose threshold is wrong fails them."""
    broken = RULES.read_text().replace("service:cafeflow_http_requests_5xx:ratio_rate5m > 0.05",
                                       "service:cafeflow_http_requests_5xx:ratio_rate5m > 0.5")
    assert broken != RULES.read_text()
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "cafeflow.yml").write_text(broken)
    (tmp_path / "tests").mkdir()
    shutil.copy(RULE_TESTS, tmp_path / "tests" / RULE_TESTS.name)
    result = subprocess.run([promtool(), "test", "rules", RULE_TESTS.name], capture_output=True, text=True,
                            timeout=300, cwd=tmp_path / "tests")
    assert result.returncode != 0 and "CafeflowHigh5xxRatio" in result.stdout + result.stderr


def test_every_alert_is_tested_firing_and_quiet():
    fired, quiet = set(), set()
    for case in (case for path in ALL_RULE_TESTS for case in yaml.safe_load(path.read_text())["tests"]):
        for check in case.get("alert_rule_test", []):
            (fired if check["exp_alerts"] else quiet).add(check["alertname"])
    alerts = set(_alerts())
    assert alerts - fired == set(), f"never tested firing: {sorted(alerts - fired)}"
    assert alerts - quiet == set(), f"never tested staying quiet: {sorted(alerts - quiet)}"


def _github_anchor(heading: str) -> str:
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_every_alert_links_its_runbook_section():
    anchors = {_github_anchor(line.lstrip("#")) for line in OPERATIONS.read_text().splitlines()
               if line.startswith("#")}
    for name, rule in _alerts().items():
        url = rule["annotations"]["runbook_url"]
        path, _, anchor = url.partition("#")
        assert path == "docs/operations.md" and anchor in anchors, f"{name}: {url} is no section of {path}"
        assert rule["labels"]["severity"] in ("critical", "warning"), name
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], name


def test_kubernetes_prometheusrule_holds_the_same_rules():
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "prometheusrule.py")], capture_output=True,
                            text=True, timeout=60, check=True)
    assert PROMETHEUS_RULE.read_text() == result.stdout, \
        "deploy/k8s/base/monitoring/prometheusrule.yaml is stale: run scripts/prometheusrule.py > it"
    assert yaml.safe_load(PROMETHEUS_RULE.read_text())["spec"] == yaml.safe_load(RULES.read_text())


def test_compose_prometheus_loads_the_rules_and_scrapes_flower_with_credentials():
    compose = load_compose()
    prometheus = compose["services"]["prometheus"]
    mounts = dict(volume.split(":")[:2] for volume in prometheus["volumes"])
    assert mounts["./deploy/prometheus/rules"] == "/etc/prometheus/rules"
    assert mounts["./deploy/compose/prometheus.yml"] == "/etc/prometheus/prometheus.yml"
    config = yaml.safe_load((ROOT / "deploy" / "compose" / "prometheus.yml").read_text())
    assert config["rule_files"] == ["/etc/prometheus/rules/*.yml"]
    (flower,) = [job for job in config["scrape_configs"] if job["job_name"] == "cafeflow-flower"]
    assert flower["static_configs"] == [{"targets": ["flower:5555"]}]
    user, password_file = flower["basic_auth"]["username"], flower["basic_auth"]["password_file"]
    secret = password_file.removeprefix("/run/secrets/")
    assert secret in prometheus["secrets"] and compose["secrets"][secret] == {"environment": "FLOWER_METRICS_PASSWORD"}
    # ... and Flower knows that account, after the operator's own
    accounts = compose["services"]["flower"]["environment"]["FLOWER_BASIC_AUTH"].split(",")
    assert accounts[1] == f"{user}:${{FLOWER_METRICS_PASSWORD:?set FLOWER_METRICS_PASSWORD in .env}}"
