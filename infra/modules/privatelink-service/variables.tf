variable "name" {
  description = "Name prefix, e.g. outrigger-dev-orders (NLB and target group names are cut to 32 characters)."
  type        = string
}

variable "vpc_id" {
  description = "The provider VPC."
  type        = string
}

variable "vpc_cidr_block" {
  description = "The provider VPC's CIDR (the NLB's security group allows it)."
  type        = string
}

variable "subnet_ids" {
  description = "Private subnets for the NLB, one per AZ."
  type        = list(string)
}

variable "listener_port" {
  description = "Port consumers connect to through their interface endpoint (TLS passes through to the sidecar)."
  type        = number
  default     = 443
}

variable "cross_zone" {
  description = "Balance across zones."
  type        = bool
  default     = true
}

variable "allowed_principals" {
  description = "Consumer account principals allowed to create endpoints to this service (arn:aws:iam::<account>:root)."
  type        = list(string)

  validation {
    condition     = length(var.allowed_principals) > 0 && alltrue([for p in var.allowed_principals : p != "*"])
    error_message = "Name the consumer accounts; \"*\" would let any AWS account request a connection."
  }
}

variable "accepted_endpoint_ids" {
  description = "Consumers' interface endpoint ids (vpce-...) to accept, keyed by a name known at plan time. acceptance_required is on, so a consumer's endpoint carries traffic only once its id is listed here."
  type        = map(string)
  default     = {}
}

variable "tags" {
  description = "Tags for every resource."
  type        = map(string)
  default     = {}
}
