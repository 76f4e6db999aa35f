output "control_url" {
  description = "The control plane's base URL (the edge's CONTROL_URL, the pools' EDGESHELL_CONTROL_URL)."
  value       = "https://${var.hostname}"
}

output "control_ip" {
  description = "Point the hostname's DNS A record here."
  value       = google_compute_global_address.control.address
}

output "database_private_ip" {
  description = "The Cloud SQL instance's private address."
  value       = google_sql_database_instance.control.private_ip_address
}

output "cluster_name" {
  description = "The SpinKube cluster."
  value       = google_container_cluster.control.name
}

output "cluster_endpoint" {
  description = "The cluster API's address (for the kubernetes and helm providers)."
  value       = google_container_cluster.control.endpoint
  sensitive   = true
}

output "cluster_ca_certificate" {
  description = "The cluster's CA certificate (base64), for the kubernetes and helm providers."
  value       = google_container_cluster.control.master_auth[0].cluster_ca_certificate
  sensitive   = true
}
