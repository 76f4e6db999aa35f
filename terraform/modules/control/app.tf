# The control functions as a SpinApp: every Spin variable of spin.toml is wired here, the secret ones
# from a Kubernetes Secret (a test checks the names against spin.toml). The schema is migrated by a Job
# before the app rolls out, and expired rows are swept by a CronJob.

locals {
  ns = "edgeshell-control"
  secret_variables = {
    # The private keys live only in the signer (signer.tf); the functions sign through it.
    signing_key          = ""
    next_signing_key     = ""
    previous_signing_key = ""
    signer_api_key       = random_password.signer_api_key.result
    database_url         = local.database_url
    internal_api_key     = var.internal_api_key
    # Users' secrets' key-encryption key (docs/secrets.md): rotate by moving it to previous_secrets_kek.
    secrets_kek          = "k1:${random_id.secrets_kek.b64_url}"
    previous_secrets_kek = ""
  }
  plain_variables = merge(
    var.limits,
    {
      database_host = local.db_host
      token_issuer  = var.token_issuer
      edge_url      = var.edge_url
      edge_origin   = replace(var.edge_url, "/^wss:/", "https:")
      oidc_issuer   = var.oidc_issuer
      oidc_audience = var.oidc_audience
      signer_url    = local.signer_url
      signer_origin = local.signer_url
      # Google's HTTPS load balancer appends "<client>, <its own address>" to X-Forwarded-For.
      trusted_proxy_hops = "2"
    },
    var.oidc_jwks_url == "" ? {} : { oidc_jwks_url = var.oidc_jwks_url },
    var.oidc_jwks_origin == "" ? {} : { oidc_jwks_origin = var.oidc_jwks_origin },
  )
  tool_security = {
    allow_privilege_escalation = false
    read_only_root_filesystem  = true
    run_as_non_root            = true
  }
}

resource "random_id" "secrets_kek" {
  byte_length = 32
}

resource "kubernetes_namespace_v1" "control" {
  metadata {
    name = local.ns
    labels = {
      "pod-security.kubernetes.io/enforce" = "restricted"
    }
  }
}

resource "kubernetes_secret_v1" "variables" {
  metadata {
    name      = "edgeshell-control-variables"
    namespace = kubernetes_namespace_v1.control.metadata[0].name
  }
  data = local.secret_variables
}

resource "kubernetes_job_v1" "migrate" {
  metadata {
    # A new name per image, so a new release migrates again.
    name      = "edgeshell-db-migrate-${substr(sha256(var.db_tool_image), 0, 8)}"
    namespace = kubernetes_namespace_v1.control.metadata[0].name
  }
  spec {
    backoff_limit = 3
    template {
      metadata {
        labels = { "app.kubernetes.io/name" = "edgeshell-db" }
      }
      spec {
        restart_policy                  = "Never"
        automount_service_account_token = false
        security_context {
          run_as_non_root = true
          run_as_user     = 10003
          seccomp_profile {
            type = "RuntimeDefault"
          }
        }
        container {
          name              = "migrate"
          image             = var.db_tool_image
          image_pull_policy = "Always"
          args              = ["migrate"]
          env {
            name = "DATABASE_URL"
            value_from {
              secret_key_ref {
                name = kubernetes_secret_v1.variables.metadata[0].name
                key  = "database_url"
              }
            }
          }
          resources {
            requests = { cpu = "100m", memory = "64Mi" }
            limits   = { cpu = "500m", memory = "128Mi" }
          }
          security_context {
            allow_privilege_escalation = local.tool_security.allow_privilege_escalation
            read_only_root_filesystem  = local.tool_security.read_only_root_filesystem
            run_as_non_root            = local.tool_security.run_as_non_root
            capabilities {
              drop = ["ALL"]
            }
          }
        }
      }
    }
  }
  wait_for_completion = true
  timeouts {
    create = "10m"
  }
}

resource "kubernetes_cron_job_v1" "cleanup" {
  metadata {
    name      = "edgeshell-db-cleanup"
    namespace = kubernetes_namespace_v1.control.metadata[0].name
  }
  spec {
    schedule                      = "*/5 * * * *"
    concurrency_policy            = "Forbid"
    successful_jobs_history_limit = 1
    failed_jobs_history_limit     = 3
    job_template {
      metadata {}
      spec {
        backoff_limit = 1
        template {
          metadata {
            labels = { "app.kubernetes.io/name" = "edgeshell-db" }
          }
          spec {
            restart_policy                  = "Never"
            automount_service_account_token = false
            security_context {
              run_as_non_root = true
              run_as_user     = 10003
              seccomp_profile {
                type = "RuntimeDefault"
              }
            }
            container {
              name              = "cleanup"
              image             = var.db_tool_image
              image_pull_policy = "Always"
              args              = ["cleanup"]
              env {
                name = "DATABASE_URL"
                value_from {
                  secret_key_ref {
                    name = kubernetes_secret_v1.variables.metadata[0].name
                    key  = "database_url"
                  }
                }
              }
              resources {
                requests = { cpu = "50m", memory = "32Mi" }
                limits   = { cpu = "250m", memory = "64Mi" }
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
  }
}

resource "kubernetes_manifest" "executor" {
  manifest = {
    apiVersion = "core.spinkube.dev/v1alpha1"
    kind       = "SpinAppExecutor"
    metadata   = { name = "containerd-shim-spin", namespace = local.ns }
    spec = {
      createDeployment = true
      deploymentConfig = { runtimeClassName = "wasmtime-spin-v2" }
    }
  }
  depends_on = [helm_release.spin_operator, kubernetes_namespace_v1.control]
}

resource "kubernetes_manifest" "app" {
  manifest = {
    apiVersion = "core.spinkube.dev/v1alpha1"
    kind       = "SpinApp"
    metadata   = { name = "edgeshell-control", namespace = local.ns }
    spec = {
      image    = var.spin_app_image
      executor = kubernetes_manifest.executor.manifest.metadata.name
      # The load balancer's backend gets the Cloud Armor policy below.
      serviceAnnotations = { "cloud.google.com/backend-config" = jsonencode({ default = "edgeshell-control" }) }
      replicas = var.replicas
      resources = {
        limits   = { cpu = "1", memory = "512Mi" }
        requests = { cpu = "250m", memory = "128Mi" }
      }
      variables = concat(
        [for name, value in local.plain_variables : { name = name, value = value }],
        [for name in keys(local.secret_variables) : {
          name      = name
          valueFrom = { secretKeyRef = { name = kubernetes_secret_v1.variables.metadata[0].name, key = name } }
        }],
      )
    }
  }
  depends_on = [kubernetes_job_v1.migrate, kubernetes_deployment_v1.signer]
}

# /internal/* answers the edge alone: Cloud Armor lets it through only from the edge's ranges (each
# allow rule holds four, the most a rule's expression may test beside the path) and refuses it from
# anywhere else before it reaches a component, which would refuse it too without the internal key.
# Unauthenticated public calls are limited per client address by the components themselves
# (preauth_burst, preauth_per_minute), which answer 429 with Retry-After.
resource "google_compute_security_policy" "control" {
  # checkov:skip=CKV_GCP_73: the backend is Rust on Spin; no Java, no Log4j lookup to guard against.
  project     = var.project_id
  name        = "edgeshell-control"
  description = "edgeshell control plane: /internal/* only from the edge"
  dynamic "rule" {
    for_each = chunklist(var.edge_cidrs, 4)
    content {
      action   = "allow"
      priority = 1000 + rule.key
      match {
        expr {
          expression = "request.path.startsWith('/internal/') && (${join(" || ", [for cidr in rule.value : "inIpRange(origin.ip, '${cidr}')"])})"
        }
      }
      description = "the edge's ranges, part ${rule.key + 1}"
    }
  }
  rule {
    action   = "deny(403)"
    priority = 2000
    match {
      expr {
        expression = "request.path.startsWith('/internal/')"
      }
    }
    description = "internal routes from anywhere else"
  }
  rule {
    action   = "allow"
    priority = 2147483647
    match {
      versioned_expr = "SRC_IPS_V1"
      config {
        src_ip_ranges = ["*"]
      }
    }
    description = "everything else"
  }
}

resource "kubernetes_manifest" "backend_config" {
  manifest = {
    apiVersion = "cloud.google.com/v1"
    kind       = "BackendConfig"
    metadata   = { name = "edgeshell-control", namespace = local.ns }
    spec       = { securityPolicy = { name = google_compute_security_policy.control.name } }
  }
  depends_on = [kubernetes_namespace_v1.control]
}

# HTTPS for the edge, the browsers' API calls (through the edge) and the pool agents' heartbeats: a
# global static address, a Google-managed certificate and a GCE Ingress to the SpinApp's Service.
resource "google_compute_global_address" "control" {
  project = var.project_id
  name    = "edgeshell-control"
}

resource "kubernetes_manifest" "certificate" {
  manifest = {
    apiVersion = "networking.gke.io/v1"
    kind       = "ManagedCertificate"
    metadata   = { name = "edgeshell-control", namespace = local.ns }
    spec       = { domains = [var.hostname] }
  }
  depends_on = [kubernetes_namespace_v1.control]
}

resource "kubernetes_manifest" "frontend" {
  manifest = {
    apiVersion = "networking.gke.io/v1beta1"
    kind       = "FrontendConfig"
    metadata   = { name = "edgeshell-control", namespace = local.ns }
    spec = {
      redirectToHttps = { enabled = true }
      sslPolicy       = "edgeshell-modern-tls"
    }
  }
  depends_on = [kubernetes_namespace_v1.control]
}

resource "google_compute_ssl_policy" "modern" {
  project         = var.project_id
  name            = "edgeshell-modern-tls"
  profile         = "MODERN"
  min_tls_version = "TLS_1_2"
}

resource "kubernetes_ingress_v1" "control" {
  metadata {
    name      = "edgeshell-control"
    namespace = local.ns
    annotations = {
      "kubernetes.io/ingress.class"                 = "gce"
      "kubernetes.io/ingress.global-static-ip-name" = google_compute_global_address.control.name
      "networking.gke.io/managed-certificates"      = "edgeshell-control"
      "networking.gke.io/v1beta1.FrontendConfig"    = "edgeshell-control"
    }
  }
  spec {
    default_backend {
      service {
        # spin-operator names the app's Service after the SpinApp.
        name = "edgeshell-control"
        port {
          number = 80
        }
      }
    }
  }
  depends_on = [kubernetes_manifest.app, kubernetes_manifest.certificate, kubernetes_manifest.frontend]
}
