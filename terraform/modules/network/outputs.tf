output "network_id" {
  description = "The VPC."
  value       = google_compute_network.this.id
}

output "subnet_id" {
  description = "The cluster's subnet (secondary ranges `pods` and `services`)."
  value       = google_compute_subnetwork.this.id
}
