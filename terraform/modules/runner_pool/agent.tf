# The pool agent and its runners, as runner-image/k8s lays them out, with the runners in a namespace of
# their own: the agent's namespace holds the agent; the runners' namespace holds runner Jobs and their
# join-token Secrets, denies every connection by default, and lets runners out only to DNS and 443 on
# runner_egress_cidrs. The agent's rights are a Role in the runners' namespace (no ClusterRole).

locals {
  agent_ns  = "edgeshell-pool"
  runner_ns = "edgeshell-runners"
  labels    = { "app.kubernetes.io/name" = "edgeshell-pool-agent", "edgeshell.dev/pool" = var.region }
  # The agent's environment: names are the agent's settings (crates/pool-agent/src/config.rs; a test checks them).
  agent_env = {
    EDGESHELL_POOL_REGION              = var.region
    EDGESHELL_POOL_BACKEND             = "kubernetes"
    EDGESHELL_POOL_LISTEN              = "0.0.0.0:7100"
    EDGESHELL_POOL_ENDPOINT            = var.pool_endpoint
    EDGESHELL_CONTROL_URL              = var.control_url
    EDGESHELL_TOKEN_ISSUER             = var.token_issuer
    EDGESHELL_POOL_CAPACITY            = tostring(var.capacity)
    EDGESHELL_K8S_NAMESPACE            = local.runner_ns
    EDGESHELL_RUNNER_IMAGE             = var.runner_image
    EDGESHELL_RUNNER_MAX_RUNTIME_SECS  = tostring(var.runner_limits.max_runtime_secs)
    EDGESHELL_RUNNER_MEMORY_MB         = tostring(var.runner_limits.memory_mb)
    EDGESHELL_RUNNER_CPU_MILLIS        = tostring(var.runner_limits.cpu_millis)
    EDGESHELL_RUNNER_IDLE_TIMEOUT_SECS = tostring(var.runner_limits.idle_timeout_secs)
    EDGESHELL_RUNNER_EGRESS_CIDRS      = join(",", var.runner_egress_cidrs)
    EDGESHELL_LOG_FORMAT               = "json"
  }
}

resource "kubernetes_namespace_v1" "agent" {
  metadata {
    name = local.agent_ns
    labels = {
      "pod-security.kubernetes.io/enforce" = "restricted"
      "pod-security.kubernetes.io/audit"   = "restricted"
    }
  }
}

resource "kubernetes_namespace_v1" "runners" {
  metadata {
    name = local.runner_ns
    labels = merge(
      {
        "pod-security.kubernetes.io/enforce" = "restricted"
        "pod-security.kubernetes.io/audit"   = "restricted"
      },
      var.spot_runners ? { "cloud.google.com/default-compute-class" = "edgeshell-runners" } : {},
    )
  }
}

# Spot first, on-demand when Spot is short: runner Jobs land here through the namespace's default class.
resource "kubernetes_manifest" "runner_compute_class" {
  count = var.spot_runners ? 1 : 0
  manifest = {
    apiVersion = "cloud.google.com/v1"
    kind       = "ComputeClass"
    metadata   = { name = "edgeshell-runners" }
    spec = {
      priorities           = [{ spot = true }, { spot = false }]
      activeMigration      = { optimizeRulePriority = true }
      whenUnsatisfiable    = "ScaleUpAnyway"
      autopilot            = { enabled = true }
    }
  }
}

resource "kubernetes_secret_v1" "api_key" {
  metadata {
    name      = "edgeshell-pool-api-key"
    namespace = kubernetes_namespace_v1.agent.metadata[0].name
  }
  data = { "api-key" = var.pool_api_key }
}

resource "kubernetes_service_account_v1" "agent" {
  metadata {
    name      = "edgeshell-pool-agent"
    namespace = kubernetes_namespace_v1.agent.metadata[0].name
  }
  automount_service_account_token = true
}

resource "kubernetes_role_v1" "agent" {
  metadata {
    name      = "edgeshell-pool-agent"
    namespace = kubernetes_namespace_v1.runners.metadata[0].name
  }
  rule {
    api_groups = ["batch"]
    resources  = ["jobs"]
    verbs      = ["create", "delete", "get", "list", "watch"]
  }
  rule {
    api_groups = [""]
    resources  = ["secrets"]
    verbs      = ["create", "delete", "get", "list", "patch"]
  }
  rule {
    api_groups = [""]
    resources  = ["pods"]
    verbs      = ["get", "list", "watch"]
  }
}

resource "kubernetes_role_binding_v1" "agent" {
  metadata {
    name      = "edgeshell-pool-agent"
    namespace = kubernetes_namespace_v1.runners.metadata[0].name
  }
  role_ref {
    api_group = "rbac.authorization.k8s.io"
    kind      = "Role"
    name      = kubernetes_role_v1.agent.metadata[0].name
  }
  subject {
    kind      = "ServiceAccount"
    name      = kubernetes_service_account_v1.agent.metadata[0].name
    namespace = kubernetes_namespace_v1.agent.metadata[0].name
  }
}

resource "kubernetes_deployment_v1" "agent" {
  metadata {
    name      = "edgeshell-pool-agent"
    namespace = kubernetes_namespace_v1.agent.metadata[0].name
    labels    = local.labels
  }
  spec {
    # One agent per region: a starting agent removes the runners its predecessor left. Recreate, never surge.
    replicas = 1
    strategy {
      type = "Recreate"
    }
    selector {
      match_labels = local.labels
    }
    template {
      metadata {
        labels = local.labels
      }
      spec {
        service_account_name             = kubernetes_service_account_v1.agent.metadata[0].name
        enable_service_links             = false
        termination_grace_period_seconds = 30
        security_context {
          run_as_non_root = true
          run_as_user     = 10002
          run_as_group    = 10002
          seccomp_profile {
            type = "RuntimeDefault"
          }
        }
        volume {
          name = "api-key"
          secret {
            secret_name  = kubernetes_secret_v1.api_key.metadata[0].name
            default_mode = "0400"
          }
        }
        container {
          # checkov:skip=CKV_K8S_14: the image is a variable validated to be pinned by digest (@sha256:...).
          # checkov:skip=CKV_K8S_43: the image is a variable validated to be pinned by digest (@sha256:...).
          name              = "agent"
          image             = var.agent_image
          image_pull_policy = "Always"
          dynamic "env" {
            for_each = local.agent_env
            content {
              name  = env.key
              value = env.value
            }
          }
          # The key is read from a file, never from the environment (runners never inherit it either way).
          env {
            name  = "EDGESHELL_POOL_API_KEY_FILE"
            value = "/var/run/edgeshell/api-key"
          }
          volume_mount {
            name       = "api-key"
            mount_path = "/var/run/edgeshell"
            read_only  = true
          }
          port {
            name           = "api"
            container_port = 7100
          }
          readiness_probe {
            http_get {
              path = "/healthz"
              port = "api"
            }
            period_seconds = 5
          }
          liveness_probe {
            http_get {
              path = "/healthz"
              port = "api"
            }
            period_seconds = 10
          }
          resources {
            requests = { cpu = "250m", memory = "128Mi" }
            limits   = { cpu = "500m", memory = "256Mi" }
          }
          security_context {
            allow_privilege_escalation = false
            read_only_root_filesystem  = true
            run_as_non_root            = true
            capabilities {
              drop = ["ALL"]
            }
          }
        }
      }
    }
  }
}

# The control plane reaches the agent here; put TLS in front with your load balancer or gateway and
# point pool_endpoint at it. The agent checks every command's signature, so the path carries no secret.
resource "kubernetes_service_v1" "agent" {
  metadata {
    name      = "edgeshell-pool-agent"
    namespace = kubernetes_namespace_v1.agent.metadata[0].name
    labels    = local.labels
    annotations = {
      "cloud.google.com/l4-rbs" = "enabled"
    }
  }
  spec {
    type     = "LoadBalancer"
    selector = local.labels
    port {
      name        = "api"
      port        = 443
      target_port = "api"
    }
  }
}

# Default deny in both namespaces; then exactly what each needs.
resource "kubernetes_network_policy_v1" "deny_all" {
  for_each = toset([local.agent_ns, local.runner_ns])
  metadata {
    name      = "default-deny"
    namespace = each.value
  }
  spec {
    pod_selector {}
    policy_types = ["Ingress", "Egress"]
  }
  depends_on = [kubernetes_namespace_v1.agent, kubernetes_namespace_v1.runners]
}

resource "kubernetes_network_policy_v1" "runners_egress" {
  metadata {
    name      = "edgeshell-runners-${var.region}"
    namespace = kubernetes_namespace_v1.runners.metadata[0].name
  }
  spec {
    pod_selector {
      match_labels = { "app.kubernetes.io/name" = "edgeshell-runner" }
    }
    policy_types = ["Ingress", "Egress"]
    egress {
      to {
        namespace_selector {
          match_labels = { "kubernetes.io/metadata.name" = "kube-system" }
        }
        pod_selector {
          match_labels = { "k8s-app" = "kube-dns" }
        }
      }
      ports {
        port     = "53"
        protocol = "UDP"
      }
      ports {
        port     = "53"
        protocol = "TCP"
      }
    }
    egress {
      dynamic "to" {
        for_each = var.runner_egress_cidrs
        content {
          ip_block {
            cidr = to.value
          }
        }
      }
      ports {
        port     = "443"
        protocol = "TCP"
      }
    }
  }
}

resource "kubernetes_network_policy_v1" "agent" {
  metadata {
    name      = "edgeshell-pool-agent"
    namespace = kubernetes_namespace_v1.agent.metadata[0].name
  }
  spec {
    pod_selector {
      match_labels = local.labels
    }
    policy_types = ["Ingress", "Egress"]
    # Commands from the control plane (through the load balancer) and kubelet probes.
    ingress {
      ports {
        port     = "7100"
        protocol = "TCP"
      }
    }
    # DNS, the control plane and JWKS (443), and the Kubernetes API.
    egress {
      ports {
        port     = "53"
        protocol = "UDP"
      }
      ports {
        port     = "53"
        protocol = "TCP"
      }
      ports {
        port     = "443"
        protocol = "TCP"
      }
    }
  }
}
