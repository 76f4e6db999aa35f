output "page_url" {
  description = "Where people open edgeshell."
  value       = module.edge.page_url
}

output "control_url" {
  description = "The control plane."
  value       = module.control.control_url
}

output "dns_records" {
  description = "A records to create: the control plane's address (pools dial out: they need none)."
  value = {
    (local.control_host) = module.control.control_ip
  }
}
