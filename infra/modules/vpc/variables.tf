variable "name" {
  description = "Name prefix for every resource, e.g. outrigger-dev-hub."
  type        = string
}

variable "cidr_block" {
  description = "The VPC's IPv4 CIDR, a /16: public /24s, private /20s and isolated /24s are cut from it."
  type        = string

  validation {
    condition     = can(cidrhost(var.cidr_block, 0)) && endswith(var.cidr_block, "/16")
    error_message = "cidr_block must be an IPv4 /16."
  }
}

variable "availability_zones" {
  description = "The 2 or 3 availability zones to spread subnets over."
  type        = list(string)

  validation {
    condition     = length(var.availability_zones) >= 2 && length(var.availability_zones) <= 3
    error_message = "Give 2 or 3 availability zones."
  }
}

variable "public_subnets" {
  description = "Create public subnets, an internet gateway and one NAT gateway per AZ (the hub VPC). Spoke VPCs leave this false and send 0.0.0.0/0 to the transit gateway instead."
  type        = bool
  default     = false
}

variable "flow_log_retention_days" {
  description = "Retention of the VPC flow log group."
  type        = number
  default     = 30
}

variable "tags" {
  description = "Tags for every resource (the providers' default_tags add the common ones)."
  type        = map(string)
  default     = {}
}

variable "gateway_endpoints" {
  description = "Gateway endpoints to create and route from the private and isolated route tables (free; ECR image layers come from S3)."
  type        = list(string)
  default     = ["s3", "dynamodb"]

  validation {
    condition     = alltrue([for s in var.gateway_endpoints : contains(["s3", "dynamodb"], s)])
    error_message = "Gateway endpoints exist only for s3 and dynamodb."
  }
}
