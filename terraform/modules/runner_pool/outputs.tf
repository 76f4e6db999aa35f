output "cluster_name" {
  description = "The region's GKE cluster."
  value       = google_container_cluster.pool.name
}

output "cluster_endpoint" {
  description = "The cluster API's address (for the kubernetes provider)."
  value       = google_container_cluster.pool.endpoint
  sensitive   = true
}

output "region" {
  description = "The edgeshell region id this pool serves."
  value       = var.region
}

output "cluster_ca_certificate" {
  description = "The cluster's CA certificate (base64), for the kubernetes provider."
  value       = google_container_cluster.pool.master_auth[0].cluster_ca_certificate
  sensitive   = true
}
