"""Validation of terraform/ where neither terraform nor its providers can be downloaded.

- Every .tf file parses (python-hcl2).
- The names the modules bind match what the code reads: the edge module's Worker bindings and vars
  against wrangler.toml and the Worker's sources, the control module's Spin variables against
  spin.toml, the runner_pool module's chart values against the pool chart's values.yaml, and the
  chart's rendered agent settings against the pool agent's configuration.

Run by terraform/validate.sh (which also runs checkov).
"""

import glob
import os
import re
import tomllib
import unittest

import hcl2
import yaml

ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), "..", ".."))
TF = os.path.join(ROOT, "terraform")


def parse(path):
    with open(os.path.join(TF, path)) as f:
        return hcl2.load(f)


def one(value):
    """python-hcl2 wraps attribute values in lists; the value itself."""
    while isinstance(value, list) and len(value) == 1:
        value = value[0]
    return value


def strings(value):
    """A list attribute's strings, however python-hcl2 nested them."""
    value = one(value)
    return [one(v) for v in value] if isinstance(value, list) else [value]


def keys_in(expression):
    """The keys of the object literals inside an HCL expression as python-hcl2 renders it."""
    return set(re.findall(r"'([A-Za-z_][A-Za-z0-9_]*)':", expression))


def local(module_file, name):
    for block in parse(module_file).get("locals", []):
        if name in block:
            return block[name][0] if isinstance(block[name], list) else block[name]
    raise KeyError(f"no local {name} in {module_file}")


def resource(module_file, kind, name):
    for block in parse(module_file).get("resource", []):
        if kind in block and name in block[kind]:
            return block[kind][name]
    raise KeyError(f"no {kind}.{name} in {module_file}")


def source_strings(pattern, paths):
    found = set()
    for path in paths:
        with open(os.path.join(ROOT, path)) as f:
            found |= set(re.findall(pattern, f.read()))
    return found


class EveryFileParses(unittest.TestCase):
    def test_parse(self):
        files = sorted(glob.glob(os.path.join(TF, "**", "*.tf"), recursive=True))
        self.assertGreaterEqual(len(files), 15)
        for path in files:
            with self.subTest(path=os.path.relpath(path, ROOT)):
                with open(path) as f:
                    self.assertIsInstance(hcl2.load(f), dict)

    def test_providers_are_pinned_exactly(self):
        for path in glob.glob(os.path.join(TF, "**", "versions.tf"), recursive=True):
            with open(path) as f:
                doc = hcl2.load(f)
            for block in doc["terraform"]:
                for providers in block["required_providers"]:
                    for name, spec in providers.items():
                        with self.subTest(path=os.path.relpath(path, ROOT), provider=name):
                            self.assertRegex(one(one(spec)["version"]), r"^\d+\.\d+\.\d+$")

    def test_no_ids_or_secrets_are_hard_coded(self):
        for path in glob.glob(os.path.join(TF, "**", "*.tf"), recursive=True):
            with open(path) as f:
                text = f.read()
            with self.subTest(path=os.path.relpath(path, ROOT)):
                # Cloudflare account and zone ids are 32 hex characters; keys start with esp_ or -----BEGIN.
                self.assertNotRegex(text, r"\b[0-9a-f]{32}\b")
                self.assertNotIn("esp_", text)
                self.assertNotIn("-----BEGIN", text)


class EdgeMatchesWrangler(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        with open(os.path.join(ROOT, "wrangler.toml"), "rb") as f:
            cls.wrangler = tomllib.load(f)
        cls.version = resource("modules/edge/main.tf", "cloudflare_worker_version", "edge")
        cls.bindings = cls.version["bindings"][0]
        cls.plain_vars = keys_in(local("modules/edge/main.tf", "plain_vars")) | keys_in(
            local("modules/edge/main.tf", "sign_in"))
        # Every binding, var and secret name the Worker's code reads.
        cls.read = source_strings(r'"([A-Z][A-Z0-9_]{3,})"', glob.glob("edge-gateway/src/*.rs", root_dir=ROOT))

    def test_durable_objects_and_migrations(self):
        for do in self.wrangler["durable_objects"]["bindings"]:
            with self.subTest(binding=do["name"]):
                self.assertIn(f"'name': '{do['name']}', 'type': 'durable_object_namespace', 'class_name': '{do['class_name']}'", self.bindings)
        migrations = self.version["migrations"][0]
        self.assertEqual(migrations["new_tag"], self.wrangler["migrations"][-1]["tag"])
        steps = [step["new_sqlite_classes"] for step in migrations["steps"]]
        self.assertEqual(steps, [m["new_sqlite_classes"] for m in self.wrangler["migrations"]])

    def test_r2_bucket(self):
        r2 = self.wrangler["r2_buckets"][0]
        self.assertIn(f"'name': '{r2['binding']}', 'type': 'r2_bucket'", self.bindings)
        variables = parse("modules/edge/variables.tf")["variable"]
        default = one([v["artifacts_bucket_name"]["default"] for v in variables if "artifacts_bucket_name" in v][0])
        self.assertEqual(default, r2["bucket_name"])

    def test_assets_and_compatibility_date(self):
        config = self.version["assets"][0]["config"]
        self.assertEqual(config["run_worker_first"], self.wrangler["assets"]["run_worker_first"])
        self.assertEqual(config["not_found_handling"], self.wrangler["assets"]["not_found_handling"])
        # The Worker reads the page's document through the assets binding (edge-gateway/src/page.rs).
        binding = self.wrangler["assets"]["binding"]
        self.assertIn(f"'name': '{binding}', 'type': 'assets'", self.bindings)
        self.assertIn(f'"{binding}"', open(os.path.join(ROOT, "edge-gateway/src/page.rs")).read())
        variables = parse("modules/edge/variables.tf")["variable"]
        default = one([v["compatibility_date"]["default"] for v in variables if "compatibility_date" in v][0])
        self.assertEqual(default, self.wrangler["compatibility_date"])

    def test_vars_and_secrets(self):
        bound = self.plain_vars | {"INTERNAL_API_KEY"}
        for name in bound:
            with self.subTest(name=name):
                self.assertIn(name, self.read, f"terraform binds {name}, which the Worker never reads")
        self.assertIn("'name': 'INTERNAL_API_KEY', 'type': 'secret_text'", self.bindings)
        for name in self.wrangler["vars"]:
            with self.subTest(name=name):
                optional = name.startswith("ROOM_")
                self.assertTrue(name in bound or optional, f"wrangler.toml sets {name}; the edge module does not")
        for required in ["TOKEN_ISSUER", "JWKS_URL", "CONTROL_URL", "OIDC_ISSUER", "OIDC_CLIENT_ID", "OIDC_CONNECT_ORIGINS",
                         "FIREBASE_PROJECT_ID", "FIREBASE_API_KEY", "FIREBASE_AUTH_DOMAIN"]:
            self.assertIn(required, bound)


class ControlMatchesSpin(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        with open(os.path.join(ROOT, "spin.toml"), "rb") as f:
            cls.spin = tomllib.load(f)["variables"]
        cls.secret = set(local("modules/control/app.tf", "secret_variables").keys()) - {"__start_line__", "__end_line__"}
        cls.plain = keys_in(local("modules/control/app.tf", "plain_variables"))
        variables = parse("modules/control/variables.tf")["variable"]
        limits = [v["limits"] for v in variables if "limits" in v][0]
        cls.limits = set(re.findall(r"""['"]([a-z_]+)['"]""", one(one(limits["validation"])["condition"])))

    def test_every_name_is_a_spin_variable(self):
        for name in self.secret | self.plain | self.limits:
            with self.subTest(name=name):
                self.assertIn(name, self.spin)

    def test_required_variables_are_set(self):
        for name, spec in self.spin.items():
            if spec.get("required"):
                with self.subTest(name=name):
                    self.assertIn(name, self.secret | self.plain)

    def test_secrets_come_from_the_secret(self):
        for name, spec in self.spin.items():
            with self.subTest(name=name):
                if spec.get("secret"):
                    self.assertIn(name, self.secret)
                    self.assertNotIn(name, self.plain)
                else:
                    self.assertNotIn(name, self.secret)

    def test_every_spin_variable_is_reachable(self):
        for name in self.spin:
            with self.subTest(name=name):
                self.assertIn(name, self.secret | self.plain | self.limits | {"oidc_jwks_url", "oidc_jwks_origin"})


class InternalRoutesAnswerTheEdgeAlone(unittest.TestCase):
    """/internal/* is refused at the load balancer unless it comes from the edge's ranges; the policy is
    the backend's, and the components trust the load balancer's X-Forwarded-For entry."""

    @classmethod
    def setUpClass(cls):
        with open(os.path.join(TF, "modules/control/app.tf")) as f:
            cls.text = f.read()
        cls.policy = resource("modules/control/app.tf", "google_compute_security_policy", "control")

    def test_internal_is_denied_after_the_edges_ranges_are_allowed(self):
        self.assertRegex(self.text, r"for_each\s*=\s*chunklist\(var\.edge_cidrs,\s*4\)")
        self.assertIn("request.path.startsWith('/internal/') && (${join", self.text)
        denies = [r for r in self.policy.get("rule", []) if one(r.get("action")) == "deny(403)"]
        self.assertEqual(len(denies), 1)
        deny = denies[0]
        self.assertEqual(one(one(one(deny["match"])["expr"])["expression"]), "request.path.startsWith('/internal/')")
        # Every allow rule for the edge (1000 + chunk) comes before the deny.
        self.assertGreater(int(one(deny["priority"])), 1000 + 22 // 4)

    def test_the_backend_gets_the_policy_and_the_client_address_is_the_balancers(self):
        self.assertIn('"cloud.google.com/backend-config" = jsonencode({ default = "edgeshell-control" })', self.text)
        config = resource("modules/control/app.tf", "kubernetes_manifest", "backend_config")
        self.assertIn("google_compute_security_policy.control.name", str(config))
        self.assertIn('trusted_proxy_hops = "2"', self.text)


def catalogue(program):
    """The settings a program reads, from the core's catalogue (crates/core/src/settings/catalogue.rs),
    with `<NAME>_FILE` for each secret, as the native programs accept."""
    with open(os.path.join(ROOT, "crates/core/src/settings/catalogue.rs")) as f:
        block = re.search(r"pub const " + program + r": &\[Setting\] = &\[(.*?)\n\];", f.read(), re.S).group(1)
    names = set(re.findall(r'(?:setting|secret)\(\s*"([A-Z0-9_]+)"', block))
    return names | {n + "_FILE" for n in re.findall(r'secret\(\s*"([A-Z0-9_]+)"', block)}


class SignerMatchesItsSettings(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        files = local("modules/control/signer.tf", "signer_files")
        cls.env = set(files.keys()) - {"__start_line__", "__end_line__"}
        with open(os.path.join(TF, "modules/control/signer.tf")) as f:
            cls.env |= set(re.findall(r'name\s*=\s*"(EDGESHELL_[A-Z0-9_]+)"', f.read()))
        cls.read = catalogue("SIGNER")

    def test_every_setting_is_read_by_the_signer(self):
        for name in self.env:
            with self.subTest(name=name):
                self.assertIn(name, self.read)

    def test_the_signer_gets_its_keys_and_the_functions_none(self):
        for name in ["EDGESHELL_SIGNER_ISSUER", "EDGESHELL_SIGNER_CLIENTS_FILE", "EDGESHELL_SIGNING_KEY_FILE"]:
            with self.subTest(name=name):
                self.assertIn(name, self.env)
        secret = local("modules/control/app.tf", "secret_variables")
        for name in ["signing_key", "next_signing_key", "previous_signing_key"]:
            with self.subTest(name=name):
                self.assertEqual(secret[name], "", "private keys stay out of the functions")
        plain = keys_in(local("modules/control/app.tf", "plain_variables"))
        self.assertTrue({"signer_url", "signer_origin"} <= plain)


class SignerGrantMatchesTheCore(unittest.TestCase):
    def test_the_functions_key_is_granted_exactly_what_the_functions_sign(self):
        """The grant terraform writes equals the core's FUNCTIONS_SCOPES (runners' upload tokens included)."""
        with open(os.path.join(TF, "modules/control/signer.tf")) as f:
            tf = f.read()
        scopes = re.search(r'scopes\s*=\s*\[(.*?)\]', tf, re.S).group(1)
        with open(os.path.join(ROOT, "crates/core/src/grants.rs")) as f:
            core = re.search(r"pub const FUNCTIONS_SCOPES: \[Scope; \d\] =\s*\[(.*?)\];", f.read(), re.S).group(1)
        names = {"Attach": "session:attach", "Join": "session:join", "PoolCommand": "pool:command",
                 "ArtifactGet": "artifact:get", "ArtifactPut": "artifact:put"}
        expected = sorted(names[v] for v in re.findall(r"Scope::(\w+)", core))
        self.assertEqual(sorted(re.findall(r'"([a-z:]+)"', scopes)), expected)
        self.assertIn("artifact:put", expected)


def render_chart(values):
    """`helm template` of the pool chart (helm beside this Python, in the tools' virtualenv)."""
    import json
    import subprocess
    import sys
    import tempfile
    helm = os.path.join(os.path.dirname(sys.executable), "helm")
    with tempfile.NamedTemporaryFile("w", suffix=".json") as f:
        json.dump(values, f)
        f.flush()
        out = subprocess.run([helm, "template", "pool", os.path.join(ROOT, "deploy/helm/edgeshell-pool"),
                              "--namespace", "edgeshell-pool", "-f", f.name],
                             check=True, capture_output=True, text=True).stdout
    return [d for d in yaml.safe_load_all(out) if d]


class PoolMatchesAgent(unittest.TestCase):
    """The runner_pool module installs the pool chart: its values are the chart's, and what the chart
    renders from them sets only settings the agent reads, and every one it needs."""

    @classmethod
    def setUpClass(cls):
        cls.values = one(local("modules/runner_pool/agent.tf", "chart_values"))
        with open(os.path.join(ROOT, "deploy/helm/edgeshell-pool/values.yaml")) as f:
            cls.chart_defaults = yaml.safe_load(f)
        cls.read = catalogue("POOL_AGENT")
        docs = render_chart({})
        config = [d for d in docs if d["kind"] == "ConfigMap"][0]
        deployment = [d for d in docs if d["kind"] == "Deployment"][0]
        cls.env = set(config["data"]) | {e["name"] for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
        cls.docs = docs

    def test_every_value_is_one_of_the_charts(self):
        def paths(tree, prefix=""):
            out = set()
            for key, value in tree.items():
                if key.startswith("__"):
                    continue
                value = one(value)
                if isinstance(value, dict) and not key.endswith("Labels"):
                    out |= paths(value, f"{prefix}{key}.")
                else:
                    out.add(f"{prefix}{key}")
            return out
        chart = paths(self.chart_defaults)
        for path in paths(self.values):
            with self.subTest(value=path):
                self.assertIn(path, chart)

    def test_every_setting_is_read_by_the_agent(self):
        for name in self.env:
            with self.subTest(name=name):
                self.assertIn(name, self.read)

    def test_required_settings(self):
        for name in ["EDGESHELL_POOL_REGION", "EDGESHELL_CONTROL_URL", "EDGESHELL_TOKEN_ISSUER",
                     "EDGESHELL_POOL_BACKEND", "EDGESHELL_RUNNER_IMAGE", "EDGESHELL_K8S_NAMESPACE",
                     "EDGESHELL_POOL_EDGE_URL", "EDGESHELL_POOL_AGENT_NAME", "EDGESHELL_POOL_API_KEY",
                     "EDGESHELL_RUNNER_EGRESS_CIDRS"]:
            with self.subTest(name=name):
                self.assertIn(name, self.env)

    def test_nothing_is_exposed(self):
        kinds = {d["kind"] for d in self.docs}
        self.assertFalse(kinds & {"Service", "Ingress", "ClusterRole", "ClusterRoleBinding"}, kinds)
        for kind in ["kubernetes_service_v1", "kubernetes_ingress_v1", "kubernetes_deployment_v1"]:
            with self.subTest(kind=kind):
                with self.assertRaises(KeyError):
                    resource("modules/runner_pool/agent.tf", kind, "agent")


if __name__ == "__main__":
    unittest.main(verbosity=2)
