variable "project_id" {
  description = "GCP project."
  type        = string
}

variable "name" {
  description = "Name of the network and everything in it."
  type        = string
}

variable "gcp_region" {
  description = "GCP region of the subnet, router and NAT."
  type        = string
}

variable "subnet_cidr" {
  description = "Primary range of the subnet (nodes)."
  type        = string
}

variable "pods_cidr" {
  description = "Secondary range `pods`."
  type        = string
}

variable "services_cidr" {
  description = "Secondary range `services`."
  type        = string
}
