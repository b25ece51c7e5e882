variable "privatelink_upstreams" {
  description = "Provider services reached through PrivateLink, keyed by the name the app calls (http://<name>/): provider output endpoint_service_name."
  type = map(object({
    endpoint_service_name = string
    port                  = optional(number, 443)
  }))
  default = {}
}

variable "lattice_upstreams" {
  description = "Provider services reached through VPC Lattice, keyed by the name the app calls: provider output lattice_service."
  type = map(object({
    custom_domain_name = string
    dns_name           = string
    service_arn        = string
  }))
  default = {}
}

variable "serverless_upstream" {
  description = "The serverless variant's private API (provider output serverless_api), reached through this VPC's execute-api endpoint as http://<name>/; null to leave it out."
  type = object({
    name          = string
    invoke_host   = string
    stage_path    = string
    execution_arn = string
  })
  default = null
}

variable "enable_execute_api_endpoint" {
  description = "Create the execute-api endpoint (needed before the provider's private API can name it); on whenever serverless_upstream is set."
  type        = bool
  default     = false
}
