variable "name" {
  description = "Name prefix, e.g. outrigger-dev."
  type        = string
}

variable "amazon_side_asn" {
  description = "BGP ASN of the transit gateway."
  type        = number
  default     = 64512
}

variable "share_principals" {
  description = "Who the transit gateway is shared with through AWS RAM: the organization's ARN, OU ARNs or member account ids."
  type        = list(string)

  validation {
    condition     = length(var.share_principals) > 0
    error_message = "Share the transit gateway with at least one principal."
  }
}

variable "hub_vpc_id" {
  description = "The networking account's hub VPC, attached here; it carries the spokes' egress (NAT) and the shared endpoints."
  type        = string
}

variable "hub_subnet_ids" {
  description = "Hub subnets for the attachment, one per AZ (the private ones, whose route tables lead to the NAT gateways)."
  type        = list(string)
}

variable "hub_route_table_ids" {
  description = "Hub route tables that get a route to the spokes' supernet through the transit gateway, by a name known at plan time (the private ones per AZ, and the public one for NAT return traffic)."
  type        = map(string)
}

variable "spoke_supernet" {
  description = "CIDR that covers every spoke VPC (e.g. 10.0.0.0/8)."
  type        = string
}

variable "tags" {
  description = "Tags for every resource."
  type        = map(string)
  default     = {}
}
