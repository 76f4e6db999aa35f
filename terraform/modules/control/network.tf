# The control plane's VPC (module `network`), with private service access so Cloud SQL has only a
# private address in it.

module "network" {
  source        = "../network"
  project_id    = var.project_id
  name          = "edgeshell-control"
  gcp_region    = var.gcp_region
  subnet_cidr   = "10.40.0.0/20"
  pods_cidr     = "10.44.0.0/14"
  services_cidr = "10.48.0.0/20"
}

resource "google_compute_global_address" "sql_peering" {
  project       = var.project_id
  name          = "edgeshell-control-sql"
  purpose       = "VPC_PEERING"
  address_type  = "INTERNAL"
  prefix_length = 20
  network       = module.network.network_id
}

resource "google_service_networking_connection" "sql" {
  network                 = module.network.network_id
  service                 = "servicenetworking.googleapis.com"
  reserved_peering_ranges = [google_compute_global_address.sql_peering.name]
}
