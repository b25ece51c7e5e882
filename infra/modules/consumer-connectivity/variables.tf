variable "name" {
  description = "Name prefix, e.g. outrigger-dev-checkout."
  type        = string
}

variable "vpc_id" {
  description = "The consumer VPC."
  type        = string
}

variable "vpc_cidr_block" {
  description = "The consumer VPC's CIDR: the only source allowed to the endpoints and to the service network."
  type        = string
}

variable "subnet_ids" {
  description = "Private subnets for the interface endpoints, one per AZ."
  type        = list(string)
}

variable "private_zone_name" {
  description = "Private hosted zone for friendly names, e.g. dev.outrigger.internal. PrivateLink services get <service>.pl.<zone>; Lattice services' custom domains must lie in this zone."
  type        = string
}

variable "privatelink_services" {
  description = "Provider endpoint services to reach through interface endpoints, keyed by service name."
  type = map(object({
    endpoint_service_name = string
    port                  = optional(number, 443)
  }))
  default = {}
}

variable "lattice_services" {
  description = "Provider Lattice services to reach through the service network, keyed by service name."
  type = map(object({
    custom_domain_name = string
    dns_name           = string
    service_arn        = string
  }))
  default = {}

  validation {
    condition     = alltrue([for s in values(var.lattice_services) : endswith(s.custom_domain_name, ".${var.private_zone_name}")])
    error_message = "Every Lattice custom domain must lie in private_zone_name."
  }
}

variable "service_network_arn" {
  description = "The shared Lattice service network (through RAM), or null to skip the VPC association."
  type        = string
  default     = null
}

variable "enable_execute_api_endpoint" {
  description = "Create an execute-api interface endpoint (private DNS on) for the serverless variant's private API."
  type        = bool
  default     = false
}

variable "tags" {
  description = "Tags for every resource."
  type        = map(string)
  default     = {}
}
