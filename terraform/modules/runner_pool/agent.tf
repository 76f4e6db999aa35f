# The pool, installed by its Helm chart (deploy/helm/edgeshell-pool, the same chart `helm install` puts
# into any cluster), with the runners in a namespace of their own: the agents' namespace holds the
# agents, which dial out to the edge (no Service, no load balancer, no inbound port); the runners'
# namespace holds runner Jobs and their join-token Secrets, denies every connection, and lets runners
# out only to DNS and 443 on runner_egress_cidrs. The agents' rights are a Role in the runners'
# namespace (no ClusterRole).

locals {
  agent_ns  = "edgeshell-pool"
  runner_ns = "edgeshell-runners"
  # The chart's values: names are its values.yaml's (a test checks every key against it).
  chart_values = {
    region      = var.region
    edgeUrl     = var.edge_url
    controlUrl  = var.control_url
    tokenIssuer = var.token_issuer
    keySecret   = { name = "edgeshell-pool-api-key", key = "api-key" }
    replicas    = var.agent_replicas
    capacity    = var.capacity
    namespace   = { create = false }
    images      = { agent = var.agent_image, runner = var.runner_image }
    agent = {
      apiServerCidrs = [var.master_cidr]
    }
    runners = {
      namespace       = local.runner_ns
      createNamespace = false
      maxRuntimeSecs  = var.runner_limits.max_runtime_secs
      memoryMb        = var.runner_limits.memory_mb
      cpuMillis       = var.runner_limits.cpu_millis
      egressCidrs     = var.runner_egress_cidrs
    }
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

resource "helm_release" "pool" {
  name      = "edgeshell-pool"
  namespace = kubernetes_namespace_v1.agent.metadata[0].name
  chart     = "${path.module}/../../../deploy/helm/edgeshell-pool"
  values    = [yamlencode(local.chart_values)]
  # The pods roll when the pool key changes (the chart reads it from the Secret).
  set = [{ name = "keyChecksum", value = sha256(var.pool_api_key) }]
  depends_on = [kubernetes_namespace_v1.runners, kubernetes_secret_v1.api_key]
}
