# The control plane's VPC: the cluster's subnet, and private service access so Cloud SQL has only a
# private address in it.

resource "google_compute_network" "control" {
  project                 = var.project_id
  name                    = "edgeshell-control"
  auto_create_subnetworks = false
}

# Nothing may reach this network from outside but what GKE opens for itself (load balancer health
# checks, the control plane); this rule makes the default explicit and logged.
resource "google_compute_firewall" "deny_ingress_control" {
  project   = var.project_id
  name      = "edgeshell-control-deny-ingress"
  network   = google_compute_network.control.id
  direction = "INGRESS"
  priority  = 65534
  deny {
    protocol = "all"
  }
  source_ranges = ["0.0.0.0/0"]
  log_config {
    metadata = "INCLUDE_ALL_METADATA"
  }
}

resource "google_compute_subnetwork" "control" {
  project                  = var.project_id
  name                     = "edgeshell-control"
  region                   = var.gcp_region
  network                  = google_compute_network.control.id
  ip_cidr_range            = "10.40.0.0/20"
  private_ip_google_access = true
  secondary_ip_range {
    range_name    = "pods"
    ip_cidr_range = "10.44.0.0/14"
  }
  secondary_ip_range {
    range_name    = "services"
    ip_cidr_range = "10.48.0.0/20"
  }
  log_config {
    aggregation_interval = "INTERVAL_5_SEC"
    flow_sampling        = 0.5
    metadata             = "INCLUDE_ALL_METADATA"
  }
}

resource "google_compute_global_address" "sql_peering" {
  project       = var.project_id
  name          = "edgeshell-control-sql"
  purpose       = "VPC_PEERING"
  address_type  = "INTERNAL"
  prefix_length = 20
  network       = google_compute_network.control.id
}

resource "google_service_networking_connection" "sql" {
  network                 = google_compute_network.control.id
  service                 = "servicenetworking.googleapis.com"
  reserved_peering_ranges = [google_compute_global_address.sql_peering.name]
}

resource "google_compute_router" "control" {
  project = var.project_id
  name    = "edgeshell-control"
  region  = var.gcp_region
  network = google_compute_network.control.id
}

# Outbound HTTPS (pool agents, the identity provider's JWKS) from private nodes.
resource "google_compute_router_nat" "control" {
  project                            = var.project_id
  name                               = "edgeshell-control"
  router                             = google_compute_router.control.name
  region                             = var.gcp_region
  nat_ip_allocate_option             = "AUTO_ONLY"
  source_subnetwork_ip_ranges_to_nat = "ALL_SUBNETWORKS_ALL_IP_RANGES"
  log_config {
    enable = true
    filter = "ERRORS_ONLY"
  }
}
