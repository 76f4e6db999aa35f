variable "project_id" {
  description = "GCP project of this region's cluster (no default: never committed)."
  type        = string
}

variable "region" {
  description = "edgeshell region id ([a-z0-9-]), what the agent reports and placement uses."
  type        = string
  validation {
    condition     = can(regex("^[a-z0-9-]{1,32}$", var.region))
    error_message = "A region id is 1-32 characters of [a-z0-9-]."
  }
}

variable "gcp_region" {
  description = "The GCP region of the cluster, e.g. europe-west1."
  type        = string
}

variable "subnet_cidr" {
  description = "Primary range of the cluster's subnet."
  type        = string
  default     = "10.10.0.0/20"
}

variable "pods_cidr" {
  description = "Secondary range for pods."
  type        = string
  default     = "10.20.0.0/14"
}

variable "services_cidr" {
  description = "Secondary range for services."
  type        = string
  default     = "10.24.0.0/20"
}

variable "master_cidr" {
  description = "The control plane's private endpoint range (a /28)."
  type        = string
  default     = "172.16.0.0/28"
}

variable "admin_cidrs" {
  description = "Networks allowed to reach the cluster's API (your CI and operators)."
  type        = list(string)
}

variable "control_url" {
  description = "EDGESHELL_CONTROL_URL: the control plane's base URL."
  type        = string
}

variable "token_issuer" {
  description = "EDGESHELL_TOKEN_ISSUER: the control plane's token_issuer."
  type        = string
}

variable "edge_url" {
  description = "EDGESHELL_POOL_EDGE_URL: the edge (https) the agents dial out to; nothing connects in to a pool."
  type        = string
  validation {
    condition     = startswith(var.edge_url, "https://")
    error_message = "edge_url must be https."
  }
}

variable "agent_replicas" {
  description = "Pool agents sharing the region (each dials the edge; one lost, the others take its new sessions)."
  type        = number
  default     = 2
}

variable "pool_api_key" {
  description = "EDGESHELL_POOL_API_KEY: the pool key `edgeshell-db pool-key add <region>` (or `rotate`) printed."
  type        = string
  sensitive   = true
}

variable "agent_image" {
  description = "The pool agent image, by digest (registry/edgeshell/pool-agent@sha256:...)."
  type        = string
  validation {
    condition     = can(regex("@sha256:[0-9a-f]{64}$", var.agent_image))
    error_message = "Pin the agent image by digest."
  }
}

variable "runner_image" {
  description = "EDGESHELL_RUNNER_IMAGE: the runner image, by digest."
  type        = string
  validation {
    condition     = can(regex("@sha256:[0-9a-f]{64}$", var.runner_image))
    error_message = "Pin the runner image by digest."
  }
}

variable "capacity" {
  description = "EDGESHELL_POOL_CAPACITY: runners at most."
  type        = number
  default     = 50
}

variable "runner_limits" {
  description = "Per-runner limits: EDGESHELL_RUNNER_{MAX_RUNTIME_SECS,MEMORY_MB,CPU_MILLIS} (the idle and detached rules are the control plane's session_* limits). Processes per pod are the kubelet's podPidsLimit on the runners' nodes (runner-image/README.md)."
  type = object({
    max_runtime_secs = number
    memory_mb        = number
    cpu_millis       = number
  })
  default = {
    max_runtime_secs = 86400
    memory_mb        = 1024
    cpu_millis       = 1000
  }
}

variable "runner_egress_cidrs" {
  description = "EDGESHELL_RUNNER_EGRESS_CIDRS: where runners may connect on 443 (the edge's ranges and your bundle hosts)."
  type        = list(string)
}

variable "spot_runners" {
  description = "Run runners on Spot capacity first (a preempted runner's session reports runner lost; on-demand is the fallback)."
  type        = bool
  default     = true
}

variable "rbac_security_group" {
  description = "The Google Groups for RBAC root group, gke-security-groups@<your domain> (operators get cluster roles through groups)."
  type        = string
}
