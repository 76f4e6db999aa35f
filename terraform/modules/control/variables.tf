variable "project_id" {
  description = "GCP project of the control plane (no default: never committed)."
  type        = string
}

variable "gcp_region" {
  description = "GCP region of the control plane and its database, e.g. europe-west1."
  type        = string
}

variable "hostname" {
  description = "The control plane's public hostname, e.g. control.example.com (CONTROL_URL is https://<hostname>)."
  type        = string
}

variable "admin_cidrs" {
  description = "Networks allowed to reach the cluster's API (your CI and operators)."
  type        = list(string)
}

variable "spin_app_image" {
  description = "The control functions' Spin app as an OCI artifact, by digest (`spin registry push` of spin.toml)."
  type        = string
  validation {
    condition     = can(regex("@sha256:[0-9a-f]{64}$", var.spin_app_image))
    error_message = "Pin the Spin app by digest."
  }
}

variable "db_tool_image" {
  description = "An image with `edgeshell-db` (migrations and cleanup), by digest."
  type        = string
  validation {
    condition     = can(regex("@sha256:[0-9a-f]{64}$", var.db_tool_image))
    error_message = "Pin the image by digest."
  }
}

variable "replicas" {
  description = "SpinApp replicas."
  type        = number
  default     = 3
}

variable "db_tier" {
  description = "Cloud SQL machine tier."
  type        = string
  default     = "db-custom-2-7680"
}

variable "signer_image" {
  description = "The token signer's image (`runner-image/Dockerfile`, target `signer`), by digest."
  type        = string
  validation {
    condition     = can(regex("@sha256:[0-9a-f]{64}$", var.signer_image))
    error_message = "Pin the image by digest."
  }
}

variable "signer_replicas" {
  description = "Token signer replicas (each signs about 1,000 tokens per second per core)."
  type        = number
  default     = 2
}

variable "signing_key" {
  description = "The current private JWK or PEM; held by the signer only."
  type        = string
  sensitive   = true
}

variable "next_signing_key" {
  description = "The next private key (rotation step 1), empty when none; held by the signer only."
  type        = string
  sensitive   = true
  default     = ""
}

variable "previous_signing_key" {
  description = "The previous private key (rotation step 2, cleared after 2 h); held by the signer only."
  type        = string
  sensitive   = true
  default     = ""
}

variable "es256_key" {
  description = "The current P-256 PKCS#8 PEM for join and pool-command tokens (ES256); empty: every token RS256. Held by the signer only."
  type        = string
  sensitive   = true
  default     = ""
}

variable "next_es256_key" {
  description = "The next ES256 key (rotation step 1), empty when none; held by the signer only."
  type        = string
  sensitive   = true
  default     = ""
}

variable "previous_es256_key" {
  description = "The previous ES256 key (rotation step 2, cleared after 15 min); held by the signer only."
  type        = string
  sensitive   = true
  default     = ""
}

variable "internal_api_key" {
  description = "Spin variable internal_api_key: the edge's bearer key for /internal/*."
  type        = string
  sensitive   = true
  validation {
    condition     = length(var.internal_api_key) >= 32
    error_message = "internal_api_key must be at least 32 characters (openssl rand -hex 32)."
  }
}

variable "token_issuer" {
  description = "Spin variable token_issuer."
  type        = string
  default     = "edgeshell-control"
}

variable "edge_url" {
  description = "Spin variable edge_url: the edge's wss:// origin (module edge's edge_url)."
  type        = string
}

variable "oidc_issuer" {
  description = "Spin variable oidc_issuer (Firebase: https://securetoken.google.com/<project>)."
  type        = string
}

variable "oidc_audience" {
  description = "Spin variable oidc_audience (the web client's id; Firebase: <project>)."
  type        = string
}

variable "oidc_jwks_url" {
  description = "Spin variable oidc_jwks_url; empty keeps the manifest's default (Firebase's)."
  type        = string
  default     = ""
}

variable "oidc_jwks_origin" {
  description = "Spin variable oidc_jwks_origin; empty keeps the manifest's default."
  type        = string
  default     = ""
}

variable "limits" {
  description = "Optional Spin variables of spin.toml's limits, by name (unset ones keep the manifest's defaults)."
  type        = map(string)
  default     = {}
  validation {
    # The names are spin.toml's (terraform/tests checks this list against the manifest).
    condition = alltrue([for name in keys(var.limits) : contains([
      "session_lifetime_secs", "session_max_lifetime_secs", "session_detached_secs", "session_idle_secs", "attach_token_secs", "max_live_sessions", "mints_per_minute", "pool_timeout_ms", "pool_health_ttl_secs",
      "preauth_burst", "preauth_per_minute", "user_burst", "user_per_minute",
      "artifact_max_per_session", "artifact_max_bytes", "artifact_user_bytes", "artifact_retention_secs",
      "artifact_link_ttl_secs",
    ], name)])
    error_message = "limits names a variable spin.toml does not declare as a limit."
  }
}

variable "edge_cidrs" {
  description = "Where the edge's calls come from (Cloudflare's published ranges): only these reach /internal/*."
  type        = list(string)
  validation {
    condition     = length(var.edge_cidrs) > 0 && alltrue([for c in var.edge_cidrs : can(cidrhost(c, 0))])
    error_message = "edge_cidrs must list at least one CIDR."
  }
}

variable "rbac_security_group" {
  description = "The Google Groups for RBAC root group, gke-security-groups@<your domain> (operators get cluster roles through groups)."
  type        = string
}
