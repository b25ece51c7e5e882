variable "name" {
  description = "Name prefix, e.g. outrigger-dev-orders."
  type        = string
}

variable "cidr_block" {
  description = "The spoke VPC's /16; must not overlap the hub or other spokes and must lie in the spokes' supernet."
  type        = string
}

variable "availability_zones" {
  description = "2 or 3 availability zones."
  type        = list(string)
}

variable "flow_log_retention_days" {
  description = "Retention of the VPC flow log group."
  type        = number
  default     = 30
}

variable "transit_gateway_id" {
  description = "The networking account's transit gateway (shared with this account through RAM)."
  type        = string
}

variable "transit_gateway_route_table_id" {
  description = "The transit gateway route table to associate with and propagate into."
  type        = string
}

variable "shared_endpoint_zone_ids" {
  description = "The shared interface endpoints' private hosted zones (networking account), keyed by service."
  type        = map(string)
  default     = {}
}

variable "tags" {
  description = "Tags for every resource."
  type        = map(string)
  default     = {}
}
