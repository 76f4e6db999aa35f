# The edge gateway: the Worker from the build output (`cargo xtask edge-build`), its SessionRoom
# Durable Object namespace (SQLite-backed, migration v1), the R2 artifacts bucket with a retention rule,
# the web client's assets, and the custom domain. Mirrors wrangler.toml (tests/terraform checks it).

locals {
  jwks_url = var.jwks_url != "" ? var.jwks_url : "${trimsuffix(var.control_url, "/")}/.well-known/jwks.json"
  sign_in = var.firebase != null ? {
    FIREBASE_PROJECT_ID  = var.firebase.project_id
    FIREBASE_API_KEY     = var.firebase.api_key
    FIREBASE_AUTH_DOMAIN = var.firebase.auth_domain
    } : {
    OIDC_ISSUER          = var.oidc_issuer
    OIDC_CLIENT_ID       = var.oidc_client_id
    OIDC_CONNECT_ORIGINS = var.oidc_connect_origins
  }
  plain_vars = merge(var.room_settings, local.sign_in, {
    TOKEN_ISSUER          = var.token_issuer
    JWKS_URL              = local.jwks_url
    CONTROL_URL           = var.control_url
    REGION_LOCATION_HINTS = join(",", [for region, hint in var.region_location_hints : "${region}=${hint}"])
    OIDC_PROVIDER_NAME    = var.oidc_provider_name
  })
}

check "sign_in" {
  assert {
    condition     = var.firebase != null || (var.oidc_issuer != "" && var.oidc_client_id != "")
    error_message = "Configure the page's sign-in: firebase, or oidc_issuer and oidc_client_id."
  }
}

resource "cloudflare_r2_bucket" "artifacts" {
  account_id = var.account_id
  name       = var.artifacts_bucket_name
  location   = var.artifacts_location
}

resource "cloudflare_r2_bucket_lifecycle" "artifacts" {
  account_id  = var.account_id
  bucket_name = cloudflare_r2_bucket.artifacts.name
  rules = [{
    id         = "expire-artifacts"
    enabled    = true
    conditions = { prefix = "" }
    delete_objects_transition = {
      condition = { type = "Age", max_age = var.artifact_retention_days * 86400 }
    }
  }]
}

resource "cloudflare_worker" "edge" {
  account_id = var.account_id
  name       = var.worker_name
  # Served on the custom domain only.
  subdomain = { enabled = false, previews_enabled = false }
  observability = {
    enabled            = true
    head_sampling_rate = 1
  }
}

resource "cloudflare_worker_version" "edge" {
  account_id         = var.account_id
  worker_id          = cloudflare_worker.edge.id
  compatibility_date = var.compatibility_date
  main_module        = "index.js"
  modules = [
    {
      name         = "index.js"
      content_type = "application/javascript+module"
      content_file = "${var.build_dir}/index.js"
    },
    {
      name         = "index_bg.wasm"
      content_type = "application/wasm"
      content_file = "${var.build_dir}/index_bg.wasm"
    },
  ]
  assets = {
    directory = var.assets_dir
    config = {
      not_found_handling = "none"
      run_worker_first   = ["/", "/index.html", "/healthz", "/sessions/*", "/artifacts/*", "/api/*", "/probe/*", "/pools/*", "/client-config.json", "/internal/*"]
    }
  }
  bindings = concat(
    [
      { name = "SESSION_ROOMS", type = "durable_object_namespace", class_name = "SessionRoom" },
      { name = "POOL_ROOMS", type = "durable_object_namespace", class_name = "PoolRoom" },
      { name = "ARTIFACTS", type = "r2_bucket", bucket_name = cloudflare_r2_bucket.artifacts.name },
      { name = "ASSETS", type = "assets" },
      { name = "INTERNAL_API_KEY", type = "secret_text", text = var.internal_api_key },
    ],
    [for name, value in local.plain_vars : { name = name, type = "plain_text", text = value }],
  )
  # wrangler.toml's migrations, in order (v1: the session rooms; v2: the pool rooms agents dial out to).
  migrations = {
    new_tag = "v2"
    steps = [
      { new_sqlite_classes = ["SessionRoom"] },
      { new_sqlite_classes = ["PoolRoom"] },
    ]
  }
}

resource "cloudflare_workers_deployment" "edge" {
  account_id  = var.account_id
  script_name = cloudflare_worker.edge.name
  strategy    = "percentage"
  versions    = [{ version_id = cloudflare_worker_version.edge.id, percentage = 100 }]
}

resource "cloudflare_workers_custom_domain" "edge" {
  account_id = var.account_id
  zone_id    = var.zone_id
  hostname   = var.hostname
  service    = cloudflare_worker.edge.name
  depends_on = [cloudflare_workers_deployment.edge]
}
