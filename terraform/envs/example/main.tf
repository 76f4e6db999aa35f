# An example production: the edge on Cloudflare, the control plane on SpinKube with Cloud SQL in one GCP
# region, and runner pools in two regions (eu, us), each its own Autopilot cluster. Fill in
# terraform.tfvars (see terraform.tfvars.example); the deploy order is in terraform/README.md.

locals {
  edge_host    = "edge.${var.domain}"
  control_host = "control.${var.domain}"
  control_url  = "https://${local.control_host}"
  # checkov:skip=CKV_SECRET_6: the token issuer's name (iss), not a secret
  token_issuer = "edgeshell-control"
}

provider "cloudflare" {
  # The API token comes from CLOUDFLARE_API_TOKEN.
}

provider "google" {
  project = var.project_id
}

data "google_client_config" "current" {}

module "edge" {
  source                = "../../modules/edge"
  account_id            = var.cloudflare_account_id
  zone_id               = var.cloudflare_zone_id
  hostname              = local.edge_host
  build_dir             = "${path.root}/../../../edge-gateway/build"
  assets_dir            = "${path.root}/../../../edge-gateway/web/dist"
  token_issuer          = local.token_issuer
  control_url           = local.control_url
  region_location_hints = { for region, r in var.regions : region => r.location_hint }
  oidc_issuer           = var.oidc.issuer
  oidc_client_id        = var.oidc.audience
  oidc_connect_origins  = var.oidc.connect_origins
  oidc_provider_name    = var.oidc.provider_name
  firebase              = var.firebase
  internal_api_key      = var.internal_api_key
}

provider "kubernetes" {
  alias                  = "control"
  host                   = "https://${module.control.cluster_endpoint}"
  token                  = data.google_client_config.current.access_token
  cluster_ca_certificate = base64decode(module.control.cluster_ca_certificate)
}

provider "helm" {
  alias = "control"
  kubernetes = {
    host                   = "https://${module.control.cluster_endpoint}"
    token                  = data.google_client_config.current.access_token
    cluster_ca_certificate = base64decode(module.control.cluster_ca_certificate)
  }
}

module "control" {
  source               = "../../modules/control"
  providers            = { kubernetes = kubernetes.control, helm = helm.control }
  project_id           = var.project_id
  gcp_region           = var.regions["eu"].gcp_region
  hostname             = local.control_host
  admin_cidrs          = var.admin_cidrs
  rbac_security_group  = var.rbac_security_group
  spin_app_image       = var.images.spin_app
  db_tool_image        = var.images.db_tool
  signer_image         = var.images.signer
  signing_key          = var.signing_key
  next_signing_key     = var.next_signing_key
  previous_signing_key = var.previous_signing_key
  es256_key            = var.es256_key
  next_es256_key       = var.next_es256_key
  previous_es256_key   = var.previous_es256_key
  internal_api_key     = var.internal_api_key
  edge_cidrs           = var.edge_cidrs
  token_issuer         = local.token_issuer
  edge_url             = module.edge.edge_url
  oidc_issuer          = var.oidc.issuer
  oidc_audience        = var.oidc.audience
}

# One kubernetes provider per region (Terraform providers cannot be created in a loop).
provider "kubernetes" {
  alias                  = "eu"
  host                   = "https://${module.pool_eu.cluster_endpoint}"
  token                  = data.google_client_config.current.access_token
  cluster_ca_certificate = base64decode(module.pool_eu.cluster_ca_certificate)
}

provider "helm" {
  alias = "eu"
  kubernetes = {
    host                   = "https://${module.pool_eu.cluster_endpoint}"
    token                  = data.google_client_config.current.access_token
    cluster_ca_certificate = base64decode(module.pool_eu.cluster_ca_certificate)
  }
}

provider "kubernetes" {
  alias                  = "us"
  host                   = "https://${module.pool_us.cluster_endpoint}"
  token                  = data.google_client_config.current.access_token
  cluster_ca_certificate = base64decode(module.pool_us.cluster_ca_certificate)
}

provider "helm" {
  alias = "us"
  kubernetes = {
    host                   = "https://${module.pool_us.cluster_endpoint}"
    token                  = data.google_client_config.current.access_token
    cluster_ca_certificate = base64decode(module.pool_us.cluster_ca_certificate)
  }
}

module "pool_eu" {
  source              = "../../modules/runner_pool"
  providers           = { kubernetes = kubernetes.eu, helm = helm.eu }
  project_id          = var.project_id
  region              = "eu"
  gcp_region          = var.regions["eu"].gcp_region
  subnet_cidr         = var.regions["eu"].subnet_cidr
  pods_cidr           = var.regions["eu"].pods_cidr
  services_cidr       = var.regions["eu"].services_cidr
  master_cidr         = var.regions["eu"].master_cidr
  admin_cidrs         = var.admin_cidrs
  rbac_security_group = var.rbac_security_group
  control_url         = module.control.control_url
  token_issuer        = local.token_issuer
  edge_url            = module.edge.page_url
  pool_api_key        = var.pool_api_keys["eu"]
  agent_image         = var.images.pool_agent
  runner_image        = var.images.runner
  runner_egress_cidrs = var.runner_egress_cidrs
}

module "pool_us" {
  source              = "../../modules/runner_pool"
  providers           = { kubernetes = kubernetes.us, helm = helm.us }
  project_id          = var.project_id
  region              = "us"
  gcp_region          = var.regions["us"].gcp_region
  subnet_cidr         = var.regions["us"].subnet_cidr
  pods_cidr           = var.regions["us"].pods_cidr
  services_cidr       = var.regions["us"].services_cidr
  master_cidr         = var.regions["us"].master_cidr
  admin_cidrs         = var.admin_cidrs
  rbac_security_group = var.rbac_security_group
  control_url         = module.control.control_url
  token_issuer        = local.token_issuer
  edge_url            = module.edge.page_url
  pool_api_key        = var.pool_api_keys["us"]
  agent_image         = var.images.pool_agent
  runner_image        = var.images.runner
  runner_egress_cidrs = var.runner_egress_cidrs
}
