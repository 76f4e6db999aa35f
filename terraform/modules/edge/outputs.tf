output "edge_url" {
  description = "The edge's WebSocket origin: the control plane's edge_url."
  value       = "wss://${var.hostname}"
}

output "page_url" {
  description = "Where people open the web client."
  value       = "https://${var.hostname}/"
}

output "artifacts_bucket" {
  description = "The R2 bucket holding session artifacts."
  value       = cloudflare_r2_bucket.artifacts.name
}

output "worker_version_id" {
  description = "The deployed Worker version."
  value       = cloudflare_worker_version.edge.id
}
