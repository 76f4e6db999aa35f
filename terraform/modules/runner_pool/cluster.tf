# One region's GKE Autopilot cluster: its own VPC and subnet, private nodes, a private control-plane
# endpoint reachable from admin_cidrs only, Workload Identity, Shielded nodes and Binary Authorization
# (Autopilot enforces both), release channel REGULAR.

resource "google_compute_network" "pool" {
  project                 = var.project_id
  name                    = "edgeshell-pool-${var.region}"
  auto_create_subnetworks = false
}

# Nothing may reach this network from outside but what GKE opens for itself (load balancer health
# checks, the control plane); this rule makes the default explicit and logged.
resource "google_compute_firewall" "deny_ingress_pool" {
  project   = var.project_id
  name      = "edgeshell-pool-${var.region}-deny-ingress"
  network   = google_compute_network.pool.id
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

resource "google_compute_subnetwork" "pool" {
  project                  = var.project_id
  name                     = "edgeshell-pool-${var.region}"
  region                   = var.gcp_region
  network                  = google_compute_network.pool.id
  ip_cidr_range            = var.subnet_cidr
  private_ip_google_access = true
  secondary_ip_range {
    range_name    = "pods"
    ip_cidr_range = var.pods_cidr
  }
  secondary_ip_range {
    range_name    = "services"
    ip_cidr_range = var.services_cidr
  }
  log_config {
    aggregation_interval = "INTERVAL_5_SEC"
    flow_sampling        = 0.5
    metadata             = "INCLUDE_ALL_METADATA"
  }
}

# Runners and the agent reach the internet (the edge, bundle hosts, the control plane) through NAT;
# nodes have no public addresses.
resource "google_compute_router" "pool" {
  project = var.project_id
  name    = "edgeshell-pool-${var.region}"
  region  = var.gcp_region
  network = google_compute_network.pool.id
}

resource "google_compute_router_nat" "pool" {
  project                            = var.project_id
  name                               = "edgeshell-pool-${var.region}"
  router                             = google_compute_router.pool.name
  region                             = var.gcp_region
  nat_ip_allocate_option             = "AUTO_ONLY"
  source_subnetwork_ip_ranges_to_nat = "ALL_SUBNETWORKS_ALL_IP_RANGES"
  log_config {
    enable = true
    filter = "ERRORS_ONLY"
  }
}

resource "google_container_cluster" "pool" {
  # checkov:skip=CKV_GCP_12: Autopilot always enforces network policies (GKE Dataplane V2); the block cannot be set.
  # checkov:skip=CKV_GCP_61: Autopilot manages intranode visibility; VPC flow logs are on in the subnet.
  # checkov:skip=CKV_GCP_69: Autopilot always runs the GKE metadata server with Workload Identity.
  project          = var.project_id
  name             = "edgeshell-pool-${var.region}"
  location         = var.gcp_region
  enable_autopilot = true
  network          = google_compute_network.pool.id
  subnetwork       = google_compute_subnetwork.pool.id

  ip_allocation_policy {
    cluster_secondary_range_name  = "pods"
    services_secondary_range_name = "services"
  }

  private_cluster_config {
    enable_private_nodes    = true
    enable_private_endpoint = false
    master_ipv4_cidr_block  = var.master_cidr
  }

  master_authorized_networks_config {
    dynamic "cidr_blocks" {
      for_each = var.admin_cidrs
      content {
        cidr_block   = cidr_blocks.value
        display_name = "admin"
      }
    }
  }

  release_channel {
    channel = "REGULAR"
  }

  master_auth {
    client_certificate_config {
      issue_client_certificate = false
    }
  }

  authenticator_groups_config {
    security_group = var.rbac_security_group
  }

  binary_authorization {
    evaluation_mode = "PROJECT_SINGLETON_POLICY_ENFORCE"
  }

  resource_labels = {
    app    = "edgeshell"
    region = var.region
  }

  deletion_protection = true
}
