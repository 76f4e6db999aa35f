output "cluster_name" {
  description = "The region's GKE cluster."
  value       = google_container_cluster.pool.name
}

output "cluster_endpoint" {
  description = "The cluster API's address (for the kubernetes provider)."
  value       = google_container_cluster.pool.endpoint
  sensitive   = true
}

output "agent_service_ip" {
  description = "The agent's load balancer address; point pool_endpoint's DNS name at it."
  value       = try(kubernetes_service_v1.agent.status[0].load_balancer[0].ingress[0].ip, null)
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
