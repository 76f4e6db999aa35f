variable "project_id" {
  description = "GCP project (no default: never committed)."
  type        = string
}

variable "cloudflare_account_id" {
  description = "Cloudflare account id."
  type        = string
}

variable "cloudflare_zone_id" {
  description = "Cloudflare zone id of the domain."
  type        = string
}

variable "domain" {
  description = "The domain: the edge is edge.<domain>, the control plane control.<domain> (pools dial out to the edge and need no name)."
  type        = string
}

variable "admin_cidrs" {
  description = "Networks allowed to reach the clusters' APIs."
  type        = list(string)
}

variable "images" {
  description = "Images by digest: spin_app (the Spin app OCI artifact), db_tool (edgeshell-db), signer (edgeshell-signer), pool_agent, runner."
  type = object({
    spin_app   = string
    db_tool    = string
    signer     = string
    pool_agent = string
    runner     = string
  })
}

variable "signing_key" {
  description = "The control plane's signing key (private JWK or PEM)."
  type        = string
  sensitive   = true
}

variable "next_signing_key" {
  description = "Rotation: the next key, published ahead of use."
  type        = string
  sensitive   = true
  default     = ""
}

variable "previous_signing_key" {
  description = "Rotation: the replaced key, published until its tokens expire."
  type        = string
  sensitive   = true
  default     = ""
}

variable "es256_key" {
  description = "P-256 PKCS#8 PEM signing join and pool-command tokens (ES256); empty: every token RS256."
  type        = string
  sensitive   = true
  default     = ""
}

variable "next_es256_key" {
  description = "Rotation: the next ES256 key, published ahead of use."
  type        = string
  sensitive   = true
  default     = ""
}

variable "previous_es256_key" {
  description = "Rotation: the replaced ES256 key, published until its tokens expire."
  type        = string
  sensitive   = true
  default     = ""
}

variable "internal_api_key" {
  description = "The edge's bearer key for the control plane's /internal/* routes."
  type        = string
  sensitive   = true
}

variable "oidc" {
  description = "The identity provider: issuer, audience (the web client id, a public client allowed refresh tokens), provider_name, and connect_origins (its token or revocation endpoints' origins when not the issuer's)."
  type = object({
    issuer          = string
    audience        = string
    provider_name   = string
    connect_origins = optional(string, "")
  })
}

variable "regions" {
  description = "Runner regions: edgeshell region id => GCP region, Durable Object location hint and subnet ranges."
  type = map(object({
    gcp_region    = string
    location_hint = string
    subnet_cidr   = string
    pods_cidr     = string
    services_cidr = string
    master_cidr   = string
  }))
  default = {
    eu = {
      gcp_region    = "europe-west1"
      location_hint = "weur"
      subnet_cidr   = "10.10.0.0/20"
      pods_cidr     = "10.20.0.0/14"
      services_cidr = "10.24.0.0/20"
      master_cidr   = "172.16.10.0/28"
    }
    us = {
      gcp_region    = "us-east4"
      location_hint = "enam"
      subnet_cidr   = "10.110.0.0/20"
      pods_cidr     = "10.120.0.0/14"
      services_cidr = "10.124.0.0/20"
      master_cidr   = "172.16.20.0/28"
    }
  }
}

variable "pool_api_keys" {
  description = "Each region's pool API key from `edgeshell-db pool-key add <region>` (second apply; see the README)."
  type        = map(string)
  sensitive   = true
}

variable "runner_egress_cidrs" {
  description = "Where runners may connect on 443: Cloudflare's published ranges and your bundle hosts."
  type        = list(string)
}

variable "edge_cidrs" {
  description = "Where the edge's calls to the control plane come from: Cloudflare's published ranges (https://www.cloudflare.com/ips/)."
  type        = list(string)
}

variable "rbac_security_group" {
  description = "Google Groups for RBAC: gke-security-groups@<your domain>."
  type        = string
}

variable "firebase" {
  description = "Sign in with Firebase Authentication instead of the oidc provider: { project_id, api_key, auth_domain }; oidc.issuer and oidc.audience are then https://securetoken.google.com/<project> and <project>."
  type = object({
    project_id  = string
    api_key     = string
    auth_domain = string
  })
  default = null
}
