variable "name" {
  description = "Lattice service name, e.g. outrigger-dev-orders (3-40 characters)."
  type        = string
}

variable "custom_domain_name" {
  description = "The name consumers call, e.g. orders.lattice.dev.outrigger.internal; its certificate comes from the shared Private CA."
  type        = string
}

variable "issuing_ca_arn" {
  description = "The shared subordinate Private CA (through RAM) that issues the custom domain's certificate."
  type        = string
}

variable "vpc_id" {
  description = "The provider VPC where the sidecars run."
  type        = string
}

variable "service_network_arn" {
  description = "The shared Lattice service network to associate the service with."
  type        = string
}

variable "consumer_account_ids" {
  description = "Accounts whose principals may invoke the service (the auth policy)."
  type        = list(string)

  validation {
    condition     = length(var.consumer_account_ids) > 0
    error_message = "Name at least one consumer account."
  }
}

variable "organization_id" {
  description = "The AWS Organizations id, required of every caller as well."
  type        = string
}

variable "tags" {
  description = "Tags for every resource."
  type        = map(string)
  default     = {}
}
