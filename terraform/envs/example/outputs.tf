output "page_url" {
  description = "Where people open edgeshell."
  value       = module.edge.page_url
}

output "control_url" {
  description = "The control plane."
  value       = module.control.control_url
}

output "dns_records" {
  description = "A records to create: the control plane's address and each pool agent's load balancer."
  value = {
    (local.control_host)                = module.control.control_ip
    "pool-eu.pools.${var.domain}" = module.pool_eu.agent_service_ip
    "pool-us.pools.${var.domain}" = module.pool_us.agent_service_ip
  }
}
