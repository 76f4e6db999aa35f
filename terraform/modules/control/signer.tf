# The token signer (crates/signer): the only holder of the private signing keys. The SpinApp's
# functions send it each token's claims over the cluster network and get the signature back, so no key
# is in the functions' Secret and RS256 runs natively (docs/decisions/0003). With an ES256 key
# (es256_key), join and pool-command tokens are signed ES256, leaving one RSA signature per mint. Only the
# SpinApp's pods may reach it. Its one client, the functions, holds a key whose grant is the token kinds
# and audiences the functions sign (edgeshell_core::grants::FUNCTIONS_*): never an upload token.

locals {
  signer_labels = { "app.kubernetes.io/name" = "edgeshell-signer" }
  signer_url    = "http://edgeshell-signer.${local.ns}.svc.cluster.local:8791"
  # The files the signer reads its secrets from (EDGESHELL_*_FILE).
  signer_files = {
    EDGESHELL_SIGNER_CLIENTS_FILE       = "clients"
    EDGESHELL_SIGNING_KEY_FILE          = "signing-key"
    EDGESHELL_NEXT_SIGNING_KEY_FILE     = "next-signing-key"
    EDGESHELL_PREVIOUS_SIGNING_KEY_FILE = "previous-signing-key"
    EDGESHELL_ES256_KEY_FILE            = "es256-key"
    EDGESHELL_NEXT_ES256_KEY_FILE       = "next-es256-key"
    EDGESHELL_PREVIOUS_ES256_KEY_FILE   = "previous-es256-key"
  }
}

resource "random_password" "signer_api_key" {
  length  = 48
  special = false
}

locals {
  # The signer stores only each key's SHA-256.
  signer_clients = jsonencode([{
    name       = "functions"
    key_sha256 = sha256(random_password.signer_api_key.result)
    scopes     = ["session:attach", "session:join", "pool:command", "artifact:get", "artifact:put"]
    audiences  = ["edgeshell-edge", "edgeshell-pool:*"]
  }])
}

resource "kubernetes_secret_v1" "signer" {
  metadata {
    name      = "edgeshell-signer"
    namespace = kubernetes_namespace_v1.control.metadata[0].name
  }
  data = {
    "clients"              = local.signer_clients
    "signing-key"          = var.signing_key
    "next-signing-key"     = var.next_signing_key
    "previous-signing-key" = var.previous_signing_key
    "es256-key"            = var.es256_key
    "next-es256-key"       = var.next_es256_key
    "previous-es256-key"   = var.previous_es256_key
  }
}

resource "kubernetes_deployment_v1" "signer" {
  metadata {
    name      = "edgeshell-signer"
    namespace = kubernetes_namespace_v1.control.metadata[0].name
    labels    = local.signer_labels
  }
  spec {
    replicas = var.signer_replicas
    selector {
      match_labels = local.signer_labels
    }
    template {
      metadata {
        labels = local.signer_labels
        # A key rotation changes the Secret; this rolls the pods so they read the new keys.
        annotations = { "edgeshell.dev/keys" = sha256(jsonencode(kubernetes_secret_v1.signer.data)) }
      }
      spec {
        automount_service_account_token = false
        enable_service_links            = false
        security_context {
          run_as_non_root = true
          run_as_user     = 10004
          run_as_group    = 10004
          seccomp_profile {
            type = "RuntimeDefault"
          }
        }
        volume {
          name = "keys"
          secret {
            secret_name  = kubernetes_secret_v1.signer.metadata[0].name
            default_mode = "0400"
          }
        }
        container {
          # checkov:skip=CKV_K8S_14: the image is a variable validated to be pinned by digest (@sha256:...).
          # checkov:skip=CKV_K8S_43: the image is a variable validated to be pinned by digest (@sha256:...).
          name              = "signer"
          image             = var.signer_image
          image_pull_policy = "Always"
          env {
            name  = "EDGESHELL_SIGNER_LISTEN"
            value = "0.0.0.0:8791"
          }
          env {
            name  = "EDGESHELL_SIGNER_ISSUER"
            value = var.token_issuer
          }
          dynamic "env" {
            for_each = local.signer_files
            content {
              name  = env.key
              value = "/var/run/edgeshell/${env.value}"
            }
          }
          volume_mount {
            name       = "keys"
            mount_path = "/var/run/edgeshell"
            read_only  = true
          }
          port {
            name           = "api"
            container_port = 8791
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
            requests = { cpu = "250m", memory = "32Mi" }
            limits   = { cpu = "1", memory = "64Mi" }
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

resource "kubernetes_service_v1" "signer" {
  metadata {
    name      = "edgeshell-signer"
    namespace = kubernetes_namespace_v1.control.metadata[0].name
    labels    = local.signer_labels
  }
  spec {
    type     = "ClusterIP"
    selector = local.signer_labels
    port {
      name        = "api"
      port        = 8791
      target_port = "api"
    }
  }
}

# Only the SpinApp's pods (spin-operator labels them with the app's name) and kubelet probes reach the
# signer; it reaches nothing.
resource "kubernetes_network_policy_v1" "signer" {
  metadata {
    name      = "edgeshell-signer"
    namespace = kubernetes_namespace_v1.control.metadata[0].name
  }
  spec {
    pod_selector {
      match_labels = local.signer_labels
    }
    policy_types = ["Ingress", "Egress"]
    ingress {
      from {
        pod_selector {
          match_labels = { "core.spinkube.dev/app-name" = "edgeshell-control" }
        }
      }
      ports {
        port     = "8791"
        protocol = "TCP"
      }
    }
  }
}
