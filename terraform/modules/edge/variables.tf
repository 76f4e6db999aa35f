variable "account_id" {
  description = "Cloudflare account id (no default: never committed)."
  type        = string
}

variable "zone_id" {
  description = "Cloudflare zone id of the hostname's zone."
  type        = string
}

variable "hostname" {
  description = "The edge's public hostname, e.g. edge.example.com (a custom domain of the Worker)."
  type        = string
}

variable "worker_name" {
  description = "The Worker's name (wrangler.toml `name`)."
  type        = string
  default     = "edgeshell-edge"
}

variable "build_dir" {
  description = "The Worker's build output (`cargo xtask edge-build` writes edge-gateway/build: index.js and index_bg.wasm)."
  type        = string
}

variable "assets_dir" {
  description = "The web client's built assets (edge-gateway/web/dist)."
  type        = string
}

variable "compatibility_date" {
  description = "Workers runtime compatibility date; keep equal to wrangler.toml."
  type        = string
  default     = "2026-04-01"
}

variable "token_issuer" {
  description = "TOKEN_ISSUER: the control plane's token_issuer."
  type        = string
}

variable "control_url" {
  description = "CONTROL_URL: the control plane's base URL (https)."
  type        = string
}

variable "jwks_url" {
  description = "JWKS_URL: where the control plane publishes its keys; defaults to <control_url>/.well-known/jwks.json."
  type        = string
  default     = ""
}

variable "region_location_hints" {
  description = "REGION_LOCATION_HINTS: Durable Object location hint per runner region, e.g. { eu = \"weur\", us = \"enam\" }."
  type        = map(string)
}

variable "oidc_issuer" {
  description = "OIDC_ISSUER: the identity provider's issuer; the page signs in with the code flow, PKCE and refresh tokens. Empty with firebase."
  type        = string
  default     = ""
}

variable "oidc_connect_origins" {
  description = "OIDC_CONNECT_ORIGINS: origins of the provider's token or revocation endpoints when not the issuer's (comma-separated)."
  type        = string
  default     = ""
}

variable "oidc_client_id" {
  description = "OIDC_CLIENT_ID: the web client's id at the provider (the control plane's oidc_audience); empty with firebase."
  type        = string
  default     = ""
}

variable "firebase" {
  description = "Firebase Authentication instead of the OIDC flow: the web app's public config { project_id, api_key, auth_domain } (null: OIDC)."
  type = object({
    project_id  = string
    api_key     = string
    auth_domain = string
  })
  default = null
}

variable "oidc_provider_name" {
  description = "OIDC_PROVIDER_NAME: the provider's name on the sign-in button."
  type        = string
  default     = "Google"
}

variable "room_settings" {
  description = "Optional ROOM_* vars (ROOM_RUNNER_GRACE_MS, ROOM_RESUME_WINDOW_SECS, ...) and ROOM_HIBERNATION."
  type        = map(string)
  default     = {}
}

variable "internal_api_key" {
  description = "INTERNAL_API_KEY secret: the control plane's internal_api_key."
  type        = string
  sensitive   = true
  validation {
    condition     = length(var.internal_api_key) >= 32
    error_message = "internal_api_key must be at least 32 characters (openssl rand -hex 32)."
  }
}

variable "artifacts_bucket_name" {
  description = "The R2 bucket for session artifacts."
  type        = string
  default     = "edgeshell-artifacts"
}

variable "artifacts_location" {
  description = "R2 location hint of the artifacts bucket (wnam, enam, weur, eeur, apac, oc)."
  type        = string
  default     = "weur"
}

variable "artifact_retention_days" {
  description = "Artifacts are deleted this many days after upload; match the control plane's artifact_retention_secs."
  type        = number
  default     = 7
}
