# Variables of both member roots (provider and consumer). Most come from the outputs of the
# networking and shared-services roots: see infra/README.md, "What each root needs".

variable "account_id" {
  description = "The member account this root deploys into."
  type        = string
}

variable "service_name" {
  description = "The service this account runs (orders, checkout, ...): names the VPC, cluster, ECS service and its friendly names."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,20}$", var.service_name))
    error_message = "service_name: lower case letters, digits and dashes, 2-21 characters."
  }
}

variable "vpc_cidr_block" {
  description = "The spoke VPC's /16, inside the networking root's spoke_supernet and unique in the environment."
  type        = string
}

variable "internal_domain" {
  description = "The environment's private DNS domain, e.g. dev.outrigger.internal."
  type        = string
}

variable "transit_gateway_id" {
  description = "networking output transit_gateway_id."
  type        = string
}

variable "transit_gateway_route_table_id" {
  description = "networking output transit_gateway_route_table_id."
  type        = string
}

variable "shared_endpoint_zone_ids" {
  description = "networking output shared_endpoint_zone_ids."
  type        = map(string)
}

variable "service_network_arn" {
  description = "networking output service_network_arn."
  type        = string
}

variable "issuing_ca_arn" {
  description = "shared-services output issuing_ca_arn."
  type        = string
}

variable "trust_bundle_pem" {
  description = "shared-services output trust_bundle_pem."
  type        = string
}

variable "outrigger_image" {
  description = "shared-services repository_urls[\"outrigger\"] with a tag, e.g. ...amazonaws.com/outrigger:0.1.0."
  type        = string
}

variable "app_image" {
  description = "The app's image from a shared-services repository, with a tag."
  type        = string
}
