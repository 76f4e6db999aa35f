# A GKE Standard cluster for SpinKube (the Spin containerd shim is installed on the nodes, which
# Autopilot does not allow): private nodes, Workload Identity, Shielded nodes, a private endpoint for
# admin_cidrs only, and SpinKube's operators from their Helm charts.

resource "google_service_account" "nodes" {
  project      = var.project_id
  account_id   = "edgeshell-control-nodes"
  display_name = "edgeshell control plane nodes"
}

resource "google_container_cluster" "control" {
  project                  = var.project_id
  name                     = "edgeshell-control"
  location                 = var.gcp_region
  network                  = module.network.network_id
  subnetwork               = module.network.subnet_id
  remove_default_node_pool = true
  initial_node_count       = 1
  networking_mode          = "VPC_NATIVE"
  enable_shielded_nodes    = true
  enable_intranode_visibility = true

  ip_allocation_policy {
    cluster_secondary_range_name  = "pods"
    services_secondary_range_name = "services"
  }

  private_cluster_config {
    enable_private_nodes    = true
    enable_private_endpoint = false
    master_ipv4_cidr_block  = "172.16.1.0/28"
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

  workload_identity_config {
    workload_pool = "${var.project_id}.svc.id.goog"
  }

  network_policy {
    enabled  = true
    provider = "CALICO"
  }

  addons_config {
    network_policy_config {
      disabled = false
    }
  }

  binary_authorization {
    evaluation_mode = "PROJECT_SINGLETON_POLICY_ENFORCE"
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

  resource_labels = {
    app = "edgeshell"
  }

  deletion_protection = true

  # The default pool is removed at once; its settings only satisfy the API.
  node_config {
    service_account = google_service_account.nodes.email
    shielded_instance_config {
      enable_secure_boot          = true
      enable_integrity_monitoring = true
    }
    workload_metadata_config {
      mode = "GKE_METADATA"
    }
  }
}

resource "google_container_node_pool" "spin" {
  project    = var.project_id
  name       = "spin"
  cluster    = google_container_cluster.control.id
  node_count = 1
  autoscaling {
    min_node_count = 1
    max_node_count = 5
  }
  management {
    auto_repair  = true
    auto_upgrade = true
  }
  node_config {
    machine_type    = "e2-standard-2"
    # The Spin shim is installed by runtime-class-manager, which needs a writable host: Ubuntu images.
    image_type      = "UBUNTU_CONTAINERD"
    service_account = google_service_account.nodes.email
    oauth_scopes    = ["https://www.googleapis.com/auth/cloud-platform"]
    labels          = { "edgeshell.dev/spin" = "true" }
    shielded_instance_config {
      enable_secure_boot          = true
      enable_integrity_monitoring = true
    }
    workload_metadata_config {
      mode = "GKE_METADATA"
    }
    metadata = {
      disable-legacy-endpoints = "true"
    }
  }
}

resource "helm_release" "cert_manager" {
  name             = "cert-manager"
  namespace        = "cert-manager"
  create_namespace = true
  repository       = "https://charts.jetstack.io"
  chart            = "cert-manager"
  version          = "v1.18.2"
  set              = [{ name = "crds.enabled", value = "true" }]
  depends_on       = [google_container_node_pool.spin]
}

resource "helm_release" "runtime_class_manager" {
  name             = "runtime-class-manager"
  namespace        = "rcm"
  create_namespace = true
  repository       = "oci://ghcr.io/spinframework/charts"
  chart            = "runtime-class-manager"
  version          = "0.1.0"
  depends_on       = [helm_release.cert_manager]
}

resource "helm_release" "spin_operator" {
  name             = "spin-operator"
  namespace        = "spin-operator"
  create_namespace = true
  repository       = "oci://ghcr.io/spinframework/charts"
  chart            = "spin-operator"
  version          = "0.6.1"
  depends_on       = [helm_release.runtime_class_manager]
}
