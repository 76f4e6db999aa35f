# One region's GKE Autopilot cluster: its own VPC (module `network`), private nodes, a private control-plane
# endpoint reachable from admin_cidrs only, Workload Identity, Shielded nodes and Binary Authorization
# (Autopilot enforces both), release channel REGULAR.

module "network" {
  source        = "../network"
  project_id    = var.project_id
  name          = "edgeshell-pool-${var.region}"
  gcp_region    = var.gcp_region
  subnet_cidr   = var.subnet_cidr
  pods_cidr     = var.pods_cidr
  services_cidr = var.services_cidr
}

resource "google_container_cluster" "pool" {
  # checkov:skip=CKV_GCP_12: Autopilot always enforces network policies (GKE Dataplane V2); the block cannot be set.
  # checkov:skip=CKV_GCP_61: Autopilot manages intranode visibility; VPC flow logs are on in the subnet.
  # checkov:skip=CKV_GCP_69: Autopilot always runs the GKE metadata server with Workload Identity.
  project          = var.project_id
  name             = "edgeshell-pool-${var.region}"
  location         = var.gcp_region
  enable_autopilot = true
  network          = module.network.network_id
  subnetwork       = module.network.subnet_id

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
